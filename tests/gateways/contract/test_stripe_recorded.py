"""Stripe answers localstripe does not give, served by a local HTTP server (the library is not
patched): the shapes are Stripe's documented ones for

- ``POST /v1/payment_intents`` off-session with a card that declines: HTTP 402, ``card_error``
  with ``decline_code`` and the PaymentIntent inside the error (localstripe answers 402 with
  ``code`` only);
- ``POST /v1/payment_intents`` off-session with a card that needs 3-D Secure: HTTP 402,
  ``authentication_required`` (localstripe answers 200 ``requires_action``, which the suite also covers);
- ``POST /v1/payment_intents`` with ``setup_future_usage`` (checkout): localstripe refuses the parameter;
- ``POST /v1/refunds`` for more than is left: HTTP 400 (localstripe accepts it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from billing_graphql.gateways.base import ChargeOutcome
from billing_graphql.gateways.stripe import StripeGateway
from tests.gateways.contract.servers import ThreadedServer


def intent(status: str, **extra) -> dict:
    return {"id": "pi_3RecordedA1b2C3d4", "object": "payment_intent", "amount": 1900, "currency": "usd",
            "status": status, "client_secret": "pi_3RecordedA1b2C3d4_secret_Xy", "livemode": False,
            "metadata": {}, **extra}


DECLINE = {"error": {
    "charge": "ch_3RecordedA1b2C3d4", "code": "card_declined", "decline_code": "insufficient_funds",
    "doc_url": "https://stripe.com/docs/error-codes/card-declined", "message": "Your card has insufficient funds.",
    "payment_intent": intent("requires_payment_method", last_payment_error={
        "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds.",
        "type": "card_error"}),
    "type": "card_error"}}
AUTHENTICATION = {"error": {
    "code": "authentication_required", "decline_code": "authentication_required",
    "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
    "message": "Your card was declined. This transaction requires authentication.",
    "payment_intent": intent("requires_payment_method"), "type": "card_error"}}
TOO_MUCH = {"error": {"code": "charge_already_refunded", "message": "Charge ch_3RecordedA1b2C3d4 has already been "
                      "refunded.", "type": "invalid_request_error"}}


async def handle(request: web.Request) -> web.Response:
    form = parse_qs((await request.read()).decode())
    request.app["seen"].append((request.path, form, request.headers.get("Idempotency-Key")))
    if request.path == "/v1/refunds":
        return web.json_response(TOO_MUCH, status=400)
    method = form.get("payment_method", [""])[0]
    if "setup_future_usage" in form:
        return web.json_response(intent("requires_payment_method", setup_future_usage="off_session"))
    answer = {"pm_recorded_declines": DECLINE, "pm_recorded_needs_3ds": AUTHENTICATION}[method]
    return web.json_response(answer, status=402)


@pytest.fixture(scope="module")
def recorded() -> Iterator[ThreadedServer]:
    app = web.Application()
    app["seen"] = []
    app.router.add_post("/v1/{tail:.*}", handle)
    server = ThreadedServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def gateway(server: ThreadedServer) -> StripeGateway:
    return StripeGateway(secret_key="sk_test_recorded", publishable_key="pk_test_recorded", api_base=server.url)


async def test_a_card_error_is_declined_with_stripes_decline_code_and_the_intent(recorded):
    result = await gateway(recorded).charge(customer_id="cus_1", payment_method_token="pm_recorded_declines",
                                            amount=1900, currency="USD", idempotency_key="pay_k1", description="d")
    assert (result.outcome, result.failure_code) == (ChargeOutcome.DECLINED, "insufficient_funds")
    assert result.gateway_payment_id == "pi_3RecordedA1b2C3d4"
    assert "insufficient_funds" in result.failure_message
    path, form, sent_key = recorded.app["seen"][-1]
    assert (form["off_session"], form["confirm"], form["amount"], sent_key) == (["true"], ["true"], ["1900"], "pay_k1")


async def test_an_off_session_authentication_required_is_action_required(recorded):
    result = await gateway(recorded).charge(customer_id="cus_1", payment_method_token="pm_recorded_needs_3ds",
                                            amount=1900, currency="USD", idempotency_key="pay_k2", description="d")
    assert (result.outcome, result.failure_code) == (ChargeOutcome.ACTION_REQUIRED, "authentication_required")
    assert result.gateway_payment_id == "pi_3RecordedA1b2C3d4"


async def test_checkout_creates_an_intent_that_saves_the_card_for_renewals(recorded):
    order = await gateway(recorded).create_order(amount=1900, currency="USD", receipt="INV-1", idempotency_key="o_1",
                                                 customer_id="cus_1", save_method=True)
    assert (order.order_id, order.client_secret, order.key_id) == (
        "pi_3RecordedA1b2C3d4", "pi_3RecordedA1b2C3d4_secret_Xy", "pk_test_recorded")
    path, form, sent_key = recorded.app["seen"][-1]
    assert (form["setup_future_usage"], form["customer"], sent_key) == (["off_session"], ["cus_1"], "o_1")


async def test_a_refund_stripe_refuses_is_a_failed_result_not_an_error(recorded):
    result = await gateway(recorded).refund(gateway_payment_id="pi_3RecordedA1b2C3d4", amount=1900, currency="USD",
                                            idempotency_key="refund_1")
    assert not result.succeeded and "charge_already_refunded" in result.failure_message


@pytest.mark.parametrize(("amount", "currency", "units"), [(1900, "USD", 1900), (500, "JPY", 500),
                                                           (299000, "IDR", 29900000), (12340, "KWD", 12340)])
def test_stripe_units(amount, currency, units):
    from billing_graphql.gateways.stripe import to_stripe_units

    assert to_stripe_units(amount, currency) == units


def test_secrets_stay_out_of_repr():
    made = StripeGateway(secret_key="sk_test_secret_value", webhook_secret="whsec_value")
    assert "sk_test_secret_value" not in repr(made) and "whsec_value" not in repr(made)
