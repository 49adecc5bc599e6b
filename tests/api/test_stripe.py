"""Stripe for an organization, over HTTP, on both databases, against localstripe on loopback:
addPaymentMethod(gateway: "stripe"), createSetupIntent, and POST /webhooks/stripe."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace

import httpx
import pytest
import stripe
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import GatewayEvent, Invoice, Organization, OutboxEvent, Payment, PaymentMethod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.stripe import StripeGateway
from billing_graphql.services.billing.charging import charge_invoice
from tests.factories import count_rows
from tests.gateways.contract.servers import running_localstripe
from tests.helpers import T0, GraphQLClient
from tests.services.test_invoicing import new_invoice

SECRET = "whsec_api_test_secret"
ADD = """
mutation Add($input: AddPaymentMethodInput!) {
  addPaymentMethod(input: $input) {
    paymentMethod { gateway gatewayPaymentMethodId type label brand last4 expMonth expYear isDefault }
    errors { code message field }
  }
}
"""
SETUP = """
mutation Setup($gateway: String!) {
  createSetupIntent(input: {gateway: $gateway}) { clientSecret publishableKey errors { code message field } }
}
"""


localstripe = pytest.fixture(scope="module", name="localstripe")(running_localstripe)


def stripe_settings(settings, url: str):
    return replace(settings, stripe_secret_key="sk_test_api", stripe_publishable_key="pk_test_api",
                   stripe_webhook_secret=SECRET, stripe_api_base=url)


async def client_for(db, settings, graphql_schema) -> httpx.AsyncClient:
    app = create_app(settings, db=db, gateways=GatewayRegistry(settings), schema=graphql_schema, freeze_gc=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def stripe_api(db, settings, graphql_schema, localstripe):
    async with await client_for(db, stripe_settings(settings, localstripe.url), graphql_schema) as http:
        yield GraphQLClient(http, db)


def card(token: str) -> dict:
    return {"gateway": "stripe", "gatewayPaymentMethodId": token, "type": "CREDIT_CARD"}


def gateway_for(localstripe) -> StripeGateway:
    return StripeGateway(secret_key="sk_test_api", api_base=localstripe.url)


async def test_add_payment_method_attaches_it_and_keeps_stripes_card_details(stripe_api, keys, db):
    data = await stripe_api.ok(ADD, {"input": {**card("pm_card_visa"), "brand": "amex", "last4": "0005"}},
                               token=keys.owner)
    result = data["addPaymentMethod"]
    assert result["errors"] == []
    method = result["paymentMethod"]
    assert method["gatewayPaymentMethodId"].startswith("pm_") and method["gatewayPaymentMethodId"] != "pm_card_visa"
    assert (method["brand"], method["last4"], method["expMonth"], method["expYear"], method["isDefault"]) == (
        "visa", "4242", 12, 2030, True)  # Stripe's details, not the caller's
    async with db.read() as session:
        organization = await session.get(Organization, keys.organization_id)
    assert organization.gateway_customer_id.startswith("cus_")
    second = await stripe_api.ok(ADD, {"input": card("pm_card_visa")}, token=keys.admin)
    assert second["addPaymentMethod"]["paymentMethod"]["isDefault"] is False
    async with db.read() as session:
        assert (await session.get(Organization, keys.organization_id)).gateway_customer_id == \
            organization.gateway_customer_id  # one customer per organization


async def test_a_payment_method_stripe_does_not_know_is_validation(stripe_api, keys, db):
    data = await stripe_api.ok(ADD, {"input": card("pm_doesNotExist123")}, token=keys.owner)
    [error] = data["addPaymentMethod"]["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION", "gatewayPaymentMethodId")
    assert "Stripe does not know" in error["message"]
    assert await count_rows(db, PaymentMethod) == 0


async def test_without_keys_stripe_is_not_configured(api, keys, db):
    for query, variables, field in ((ADD, {"input": card("pm_card_visa")}, "addPaymentMethod"),
                                    (SETUP, {"gateway": "stripe"}, "createSetupIntent")):
        data = await api.ok(query, variables, token=keys.owner)
        [error] = data[field]["errors"]
        assert (error["code"], error["message"]) == ("VALIDATION", "Stripe is not configured.")
    assert await count_rows(db, PaymentMethod) == 0


async def test_create_setup_intent_returns_the_client_secret_and_publishable_key(stripe_api, keys):
    data = await stripe_api.ok(SETUP, {"gateway": "stripe"}, token=keys.admin)
    result = data["createSetupIntent"]
    assert result["errors"] == [] and result["publishableKey"] == "pk_test_api"
    assert result["clientSecret"].startswith("seti_") and "_secret_" in result["clientSecret"]
    denied = await stripe_api.post(SETUP, {"gateway": "stripe"}, token=keys.member)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await stripe_api.ok(SETUP, {"gateway": "sandbox"}, token=keys.owner)
    assert other["createSetupIntent"]["errors"][0]["code"] == "VALIDATION"


# -- POST /webhooks/stripe ---------------------------------------------------------------------

def signed(event: dict, *, secret: str = SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event)
    return payload.encode(), {"stripe-signature": stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=at)}


def event(event_type: str, obj: dict) -> dict:
    return {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": event_type, "data": {"object": obj}}


async def deliver(api: GraphQLClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await api.client.post("/webhooks/stripe", content=body, headers={"content-type": "application/json",
                                                                          **headers})


async def saved_card_event(localstripe, db, keys) -> tuple[dict, str]:
    """A SetupIntent Stripe.js confirmed for the organization's customer: its event, and the card."""
    gateway = gateway_for(localstripe)
    customer = await gateway.create_customer(organization_id=str(keys.organization_id), name="acme", email=None)
    async with db.write() as session:
        (await session.get(Organization, keys.organization_id)).gateway_customer_id = customer
    method = await gateway.client.v1.payment_methods.create_async(  # what Stripe.js does with the card, at Stripe
        {"type": "card", "card": {"number": "4242424242424242", "exp_month": 8, "exp_year": 2031, "cvc": "123"}})
    return event("setup_intent.succeeded", {"id": "seti_1", "object": "setup_intent", "status": "succeeded",
                                            "customer": customer, "payment_method": method.id}), method.id


async def test_setup_intent_succeeded_saves_the_card_once_as_the_default(stripe_api, localstripe, db, keys):
    setup, method_id = await saved_card_event(localstripe, db, keys)
    body, headers = signed(setup)
    first = await deliver(stripe_api, body, headers)
    assert first.status_code == 200 and first.json()["result"] == "payment method saved", first.text
    again = await deliver(stripe_api, body, headers)
    assert again.json()["duplicate"] is True
    same_card_new_event = await deliver(stripe_api, *signed({**setup, "id": "evt_another_delivery"}))
    assert same_card_new_event.json()["result"] == "payment method already saved"
    async with db.read() as session:
        [saved] = (await session.scalars(select(PaymentMethod))).all()
    assert (saved.gateway, saved.gateway_payment_method_id, saved.brand, saved.last4, saved.exp_month,
            saved.exp_year, saved.is_default) == ("stripe", method_id, "visa", "4242", 8, 2031, True)

    detached = await deliver(stripe_api, *signed(event("payment_method.detached", {"id": method_id,
                                                                                   "object": "payment_method"})))
    assert detached.json()["result"] == "payment method removed"
    assert await count_rows(db, PaymentMethod) == 0
    # Out of order: the SetupIntent's event again after the detachment changes nothing.
    assert (await deliver(stripe_api, body, headers)).json()["duplicate"] is True
    assert await count_rows(db, PaymentMethod) == 0


async def test_a_dispute_marks_the_payment_and_sends_invoice_disputed_once(stripe_api, localstripe, db, keys):
    gateway = gateway_for(localstripe)
    customer = await gateway.create_customer(organization_id=str(keys.organization_id), name="acme", email=None)
    details = await gateway.attach_payment_method("pm_card_visa", customer)
    async with db.write() as session:
        (await session.get(Organization, keys.organization_id)).gateway_customer_id = customer
        method = PaymentMethod(id=uuid.uuid4(), organization_id=keys.organization_id, gateway="stripe",
                               gateway_payment_method_id=details.payment_method_id, type="CREDIT_CARD",
                               label="Visa", is_default=True, created_at=T0)
        session.add(method)
    invoice = await new_invoice(db, keys.organization_id, amount=1900, finalize=True)
    async with db.write() as session:
        payment = await charge_invoice(session, await session.get(Invoice, invoice.id),
                                       await session.get(PaymentMethod, method.id), gateway, T0)
    assert payment.gateway_payment_id.startswith("pi_")
    dispute = event("charge.dispute.created", {"id": "dp_1", "object": "dispute", "payment_intent":
                                               payment.gateway_payment_id, "reason": "fraudulent", "amount": 1900})
    for _ in range(2):
        response = await deliver(stripe_api, *signed(dispute))
    assert response.json()["duplicate"] is True
    async with db.read() as session:
        stored = await session.get(Payment, payment.id)
        [sent] = (await session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "invoice.disputed"))).all()
    assert stored.disputed_at is not None and sent.payload["disputeReason"] == "fraudulent"


@pytest.mark.parametrize("problem", ["wrong secret", "stale", "no header", "flipped byte"])
async def test_a_bad_signature_is_400_with_a_reason_and_nothing_recorded(stripe_api, db, problem):
    body, headers = signed(event("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent"}),
                           secret="whsec_other" if problem == "wrong secret" else SECRET,
                           at=int(time.time()) - 301 if problem == "stale" else None)
    if problem == "no header":
        headers = {}
    if problem == "flipped byte":
        body = body.replace(b"pi_1", b"pi_2")
    response = await deliver(stripe_api, body, headers)
    assert response.status_code == 400 and response.json()["detail"]
    if problem == "stale":
        assert "300 s" in response.json()["detail"]
    assert await count_rows(db, GatewayEvent) == 0


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # deep nesting
    b'{"id": "evt_\\ud800", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}}',
    b'{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {"id": "\\udfff"}}}',
    b'{"id": "evt_2", "object": "event", "type": "customer.created", "data": {"object": {}}}',  # unknown type
    b'{"id": "evt_3", "object": "event", "type": "payment_intent.succeeded", "data": []}',
    b"not json", b"\xff\xfe", b"[]", b"{}",
])
async def test_hostile_or_unknown_signed_bodies_are_4xx_never_500(stripe_api, db, body):
    text = body.decode("utf-8", errors="surrogateescape")
    header = stripe.WebhookSignature.generate_signature_header(text, SECRET) if body.isascii() or body.startswith(
        b"[") else "t=1,v1=00"
    response = await deliver(stripe_api, body, {"stripe-signature": header})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert await count_rows(db, GatewayEvent) == 0


# -- the journey of README's Stripe section, with the billing run and dunning ----------------------

SUBSCRIBE = """mutation($i: SubscribeInput!) { subscribe(input: $i) {
  subscription { status } invoice { id status } errors { code message field } } }"""
ADVANCE = "mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }"
INVOICES = """{ invoices(first: 10) { edges { node { id billingReason status
  payments { status gateway gatewayPaymentId } } } } }"""
REFUND = """mutation($i: RefundInput!) { refund(input: $i) {
  status refundAmount { amount } invoiceStatus errors { code message } } }"""
SET_DEFAULT = "mutation($id: ID!) { setDefaultPaymentMethod(input: {id: $id}) { errors { code } } }"
METHOD_IDS = "{ paymentMethods { id gatewayPaymentMethodId isDefault } }"


@pytest.fixture
async def stripe_clock_api(db, settings, graphql_schema, localstripe):
    from billing_graphql.db.models import TestClock
    from tests.api.conftest import APRIL_1

    async with db.write() as session:
        session.add(TestClock(id=1, now=APRIL_1))
    configured = replace(stripe_settings(settings, localstripe.url), test_clock=True)
    async with await client_for(db, configured, graphql_schema) as http:
        yield GraphQLClient(http, db)


async def renewals(api, keys) -> list[dict]:
    edges = (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]
    return [edge["node"] for edge in edges if edge["node"]["billingReason"] == "SUBSCRIPTION_CYCLE"]


async def test_a_stripe_organization_subscribes_renews_refunds_and_goes_through_dunning(stripe_clock_api, localstripe,
                                                                                       db, keys):
    from tests.factories import make_plan
    from tests.helpers import gid

    api = stripe_clock_api
    plan = await make_plan(db, slug="starter", monthly=299000, trial_days=0)
    saved = (await api.ok(ADD, {"input": card("pm_card_visa")}, token=keys.owner))["addPaymentMethod"]
    assert saved["errors"] == [] and saved["paymentMethod"]["isDefault"]

    subscribed = (await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id), "idempotencyKey": "sub-1"}},
                               token=keys.owner))["subscribe"]
    assert subscribed["errors"] == [] and subscribed["subscription"]["status"] == "ACTIVE"
    assert subscribed["invoice"]["status"] == "PAID"

    # The billing run renews it, charged through Stripe.
    assert (await api.ok(ADVANCE, {"to": "2026-05-01T00:00:01Z"}, token=keys.super_admin))["advanceClock"][
        "errors"] == []
    [renewal] = await renewals(api, keys)
    assert renewal["status"] == "PAID"
    [paid] = renewal["payments"]
    assert (paid["status"], paid["gateway"]) == ("SUCCEEDED", "stripe") and paid["gatewayPaymentId"].startswith("pi_")

    # Refunded through Stripe: part, then the rest.
    part = (await api.ok(REFUND, {"i": {"invoiceId": renewal["id"], "amount": "100000"}},
                         token=keys.super_admin))["refund"]
    assert part["errors"] == [] and (part["status"], part["invoiceStatus"]) == ("SUCCEEDED", "PARTIALLY_REFUNDED")
    rest = (await api.ok(REFUND, {"i": {"invoiceId": renewal["id"]}}, token=keys.super_admin))["refund"]
    assert rest["errors"] == [] and rest["invoiceStatus"] == "REFUNDED"
    refunds = await gateway_for(localstripe).client.v1.refunds.list_async({"payment_intent": paid["gatewayPaymentId"]})
    assert sum(refund.amount for refund in refunds.data) == 331890 * 100  # IDR in Stripe's hundredths

    # Dunning: a card Stripe declines becomes the default; the next renewal fails, the retry with a
    # good default card again pays it.
    declining = (await api.ok(ADD, {"input": {**card("pm_card_chargeCustomerFail"), "isDefault": True}},
                              token=keys.owner))["addPaymentMethod"]
    assert declining["errors"] == []
    await api.ok(ADVANCE, {"to": "2026-06-01T00:00:01Z"}, token=keys.super_admin)
    assert (await api.ok("{ subscription { status } }", token=keys.owner))["subscription"]["status"] == "PAST_DUE"
    methods = (await api.ok(METHOD_IDS, token=keys.owner))["paymentMethods"]
    good = next(m for m in methods if not m["isDefault"])
    assert (await api.ok(SET_DEFAULT, {"id": good["id"]}, token=keys.owner))["setDefaultPaymentMethod"]["errors"] == []
    await api.ok(ADVANCE, {"to": "2026-06-02T00:00:02Z"}, token=keys.super_admin)
    assert (await api.ok("{ subscription { status } }", token=keys.owner))["subscription"]["status"] == "ACTIVE"
    [june] = [node for node in await renewals(api, keys) if node["status"] == "PAID"]  # May's is REFUNDED
    assert sorted(payment["status"] for payment in june["payments"]) == ["FAILED", "SUCCEEDED"]
