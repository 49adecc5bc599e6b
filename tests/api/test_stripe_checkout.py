"""Checkout with Stripe over HTTP, on both databases: startCheckout returns the PaymentIntent's
client secret; Stripe's payment_intent.succeeded completes the checkout and saves the card.

localstripe refuses ``setup_future_usage``, so Stripe's answers come from a local server
(PaymentIntent created with ``setup_future_usage=off_session``; after Stripe.js confirmed it,
retrieved ``succeeded`` with its PaymentMethod; the PaymentMethod's card details)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs

import httpx
import pytest
import stripe
from aiohttp import web
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import PaymentMethod, Subscription
from billing_graphql.gateways import GatewayRegistry
from tests.gateways.contract.servers import ThreadedServer
from tests.factories import count_rows, make_plan
from tests.helpers import GraphQLClient, gid

SECRET = "whsec_checkout_test"
START = """
mutation Start($input: StartCheckoutInput!) {
  startCheckout(input: $input) { gateway orderId keyId clientSecret amount { amount } errors { code message field } }
}
"""
METHODS = "{ paymentMethods { gateway gatewayPaymentMethodId brand last4 expMonth expYear isDefault } }"


class RecordedStripe:
    """Stripe's answers for one checkout; ``confirmed`` is what Stripe.js did in the browser."""

    def __init__(self) -> None:
        self.intents: dict[str, dict] = {}
        self.confirmed = False
        self.sent: list[dict] = []
        app = web.Application()
        app.router.add_post("/v1/customers", self.customer)
        app.router.add_post("/v1/payment_intents", self.create_intent)
        app.router.add_get("/v1/payment_intents/{id}", self.intent)
        app.router.add_get("/v1/payment_methods/{id}", self.method)
        self.server = ThreadedServer(app)

    async def customer(self, request: web.Request) -> web.Response:
        return web.json_response({"id": "cus_RecordedCheckout", "object": "customer"})

    async def create_intent(self, request: web.Request) -> web.Response:
        form = {key: values[0] for key, values in parse_qs((await request.read()).decode()).items()}
        self.sent.append(form)
        intent = {"id": "pi_3RecordedCheckout", "object": "payment_intent", "amount": int(form["amount"]),
                  "currency": form["currency"], "customer": form.get("customer"), "status": "requires_payment_method",
                  "setup_future_usage": form.get("setup_future_usage"), "payment_method": None,
                  "client_secret": "pi_3RecordedCheckout_secret_Ab12", "metadata": {}}
        self.intents[intent["id"]] = intent
        return web.json_response(intent)

    async def intent(self, request: web.Request) -> web.Response:
        intent = dict(self.intents[request.match_info["id"]])
        if self.confirmed:
            intent.update(status="succeeded", payment_method="pm_1RecordedCard")
        return web.json_response(intent)

    async def method(self, request: web.Request) -> web.Response:
        return web.json_response({"id": "pm_1RecordedCard", "object": "payment_method", "type": "card",
                                  "customer": "cus_RecordedCheckout",
                                  "card": {"brand": "visa", "last4": "4242", "exp_month": 4, "exp_year": 2032}})


@pytest.fixture(scope="module")
def recorded() -> Iterator[RecordedStripe]:
    made = RecordedStripe()
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture
async def stripe_api(db, settings, graphql_schema, recorded):
    recorded.confirmed = False
    configured = replace(settings, stripe_secret_key="sk_test_checkout", stripe_publishable_key="pk_test_checkout",
                         stripe_webhook_secret=SECRET, stripe_api_base=recorded.server.url)
    app = create_app(configured, db=db, gateways=GatewayRegistry(configured), schema=graphql_schema, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield GraphQLClient(http, db)


async def test_checkout_with_stripe_is_completed_by_payment_intent_succeeded(stripe_api, recorded, db, keys):
    plan = await make_plan(db, monthly=299000, trial_days=0)
    started = (await stripe_api.ok(START, {"input": {"planId": gid("Plan", plan.id), "gateway": "stripe"}},
                                   token=keys.owner))["startCheckout"]
    assert started["errors"] == []
    assert (started["gateway"], started["orderId"], started["keyId"], started["clientSecret"]) == (
        "stripe", "pi_3RecordedCheckout", "pk_test_checkout", "pi_3RecordedCheckout_secret_Ab12")
    sent = recorded.sent[-1]
    assert (sent["setup_future_usage"], sent["customer"], sent["amount"]) == (
        "off_session", "cus_RecordedCheckout", str(int(started["amount"]["amount"]) * 100))  # IDR in hundredths

    recorded.confirmed = True  # the SPA: stripe.confirmCardPayment(clientSecret, {payment_method: {card}})
    intent = (await stripe.StripeClient("sk_test_checkout", base_addresses={"api": recorded.server.url},
                                        http_client=stripe.HTTPXClient())
              .v1.payment_intents.retrieve_async("pi_3RecordedCheckout")).to_dict()
    event = json.dumps({"id": "evt_1RecordedCheckout", "object": "event", "type": "payment_intent.succeeded",
                        "data": {"object": intent}})
    headers = {"stripe-signature": stripe.WebhookSignature.generate_signature_header(event, SECRET),
               "content-type": "application/json"}
    for _ in range(2):
        response = await stripe_api.client.post("/webhooks/stripe", content=event.encode(), headers=headers)
        assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is True
    async with db.read() as session:
        [subscription] = (await session.scalars(select(Subscription))).all()
    assert subscription.status.value == "ACTIVE"
    methods = (await stripe_api.ok(METHODS, token=keys.owner))["paymentMethods"]
    assert methods == [{"gateway": "stripe", "gatewayPaymentMethodId": "pm_1RecordedCard", "brand": "visa",
                        "last4": "4242", "expMonth": None, "expYear": None, "isDefault": True}]
    assert await count_rows(db, PaymentMethod) == 1
