"""The portal's cards page with each processor's own form, over HTTP, on both databases.

- Stripe (against localstripe): the page carries Stripe.js from ``BILLING_STRIPE_JS_URL`` and a
  SetupIntent's client secret, never the token form; the SetupIntent is confirmed here as Stripe.js
  confirms it (``POST /v1/setup_intents/{id}/confirm`` with the publishable key), then the action
  saves its card as ``setup_intent.succeeded`` does. A card Stripe declined, or another customer's
  SetupIntent, saves nothing.
- Razorpay (against the stateful fake of its API): the page opens Checkout on an authorisation order
  that asks for a token; what Checkout's handler returns is posted, and the signature (HMAC-SHA256
  of ``order_id|payment_id`` under the key secret) is verified before the card is saved.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from billing_graphql.app import create_app
from billing_graphql.db.models import Organization, PaymentMethod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.razorpay import RazorpayGateway
from tests.api.test_portal import SECRET as PORTAL_SECRET
from tests.api.test_portal import new_session, path_of
from tests.factories import count_rows
from tests.gateways.contract.razorpay_fake import RazorpayFake
from tests.gateways.contract.servers import running_localstripe
from tests.helpers import GraphQLClient

localstripe = pytest.fixture(scope="module", name="localstripe")(running_localstripe)
RAZORPAY_SECRET = "rzp_test_secret_for_the_portal"


async def _client(db, settings, gateways: GatewayRegistry | None = None):
    app = create_app(settings, db=db, gateways=gateways or GatewayRegistry(settings), freeze_gc=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def stripe_portal(db, settings, localstripe):
    configured = replace(settings, portal_secret=PORTAL_SECRET, public_url="https://billing.example",
                         stripe_secret_key="sk_test_portal", stripe_publishable_key="pk_test_portal",
                         stripe_api_base=localstripe.url, stripe_js_url=f"{localstripe.url}/js.stripe.com/v3/")
    async with await _client(db, configured) as client:
        yield GraphQLClient(client, db)


@pytest.fixture
def razorpay_fake() -> RazorpayFake:
    return RazorpayFake()


@pytest.fixture
async def razorpay_portal(db, settings, razorpay_fake):
    configured = replace(settings, portal_secret=PORTAL_SECRET, public_url="https://billing.example",
                         razorpay_key_id="rzp_test_portal", razorpay_key_secret=RAZORPAY_SECRET)
    gateway = RazorpayGateway.from_settings(configured, transport=razorpay_fake.transport())
    async with await _client(db, configured, GatewayRegistry(configured, {"razorpay": gateway})) as client:
        yield GraphQLClient(client, db)


async def cards_page(api: GraphQLClient, token: str) -> tuple[str, httpx.Response]:
    path = path_of((await new_session(api, token))["url"])
    return path, await api.client.get(f"{path}/cards")


def field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def data(html: str, name: str) -> str:
    return re.search(rf'data-{name}="([^"]*)"', html).group(1)


async def confirm_as_stripe_js(localstripe, client_secret: str, number: str) -> httpx.Response:
    """What ``stripe.confirmCardSetup`` sends from the browser (localstripe's Stripe.js does the same)."""
    intent = client_secret.split("_secret_")[0]
    async with httpx.AsyncClient() as client:
        return await client.post(f"{localstripe.url}/v1/setup_intents/{intent}/confirm", json={
            "key": "pk_test_portal", "use_stripe_sdk": True, "client_secret": client_secret,
            "payment_method_data": {"type": "card", "card": {"number": number, "exp_month": "12", "exp_year": "2030",
                                                             "cvc": "123"}}})


async def test_a_stripe_organizations_cards_page_carries_stripe_js_and_a_setup_intent_not_the_token_form(
        stripe_portal, keys, localstripe):
    _, page = await cards_page(stripe_portal, keys.owner)
    assert page.status_code == 200
    html = page.text
    assert 'name="token"' not in html and "/actions/add-card" not in html
    assert '<p id="card-needs-js" class="error">Adding a card needs JavaScript' in html
    assert f'<script src="{localstripe.url}/js.stripe.com/v3/" nonce="' in html
    assert data(html, "key") == "pk_test_portal" and re.fullmatch(r"seti_\w+_secret_\w+", data(html, "secret"))
    nonce = re.search(r'<script nonce="([^"]+)">', html).group(1)
    policy = page.headers["content-security-policy"]
    assert f"script-src {localstripe.url} 'nonce-{nonce}'" in policy and "form-action 'self'" in policy
    assert f"connect-src {localstripe.url}" in policy and "default-src 'none'" in policy
    # a browser reads only the first of two equal directives: the processor's replace the portal's
    assert policy.count("script-src") == 1 and policy.count("connect-src") == 1


async def test_a_card_confirmed_with_stripe_elements_is_saved_as_the_default(stripe_portal, keys, db, localstripe):
    path, page = await cards_page(stripe_portal, keys.owner)
    confirmed = await confirm_as_stripe_js(localstripe, data(page.text, "secret"), "4242424242424242")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "succeeded"
    saved = await stripe_portal.client.post(f"{path}/actions/add-stripe-card", data={
        "csrf": field(page.text, "csrf"), "setup_intent": confirmed.json()["id"], "make_default": "yes"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("/cards?notice=card-added")
    async with db.read() as session:
        [method] = (await session.scalars(select(PaymentMethod))).all()
        organization = await session.get(Organization, keys.organization_id)
    assert (method.gateway, method.brand, method.last4, method.exp_month, method.exp_year, method.is_default) == (
        "stripe", "visa", "4242", 12, 2030, True)
    assert method.gateway_payment_method_id == confirmed.json()["payment_method"]
    assert organization.gateway_customer_id.startswith("cus_")
    listed = (await stripe_portal.client.get(f"{path}/cards")).text
    assert "Visa •••• 4242" in listed and "12/2030" in listed
    again = await stripe_portal.client.post(f"{path}/actions/add-stripe-card", data={
        "csrf": field(page.text, "csrf"), "setup_intent": confirmed.json()["id"], "make_default": "yes"})
    assert again.status_code == 303 and "notice=card-added" in again.headers["location"]  # saved once
    assert await count_rows(db, PaymentMethod) == 1


async def test_a_card_stripe_declined_or_another_customers_setup_intent_saves_nothing(stripe_portal, keys, db,
                                                                                      localstripe):
    path, page = await cards_page(stripe_portal, keys.owner)
    csrf = field(page.text, "csrf")
    declined = await confirm_as_stripe_js(localstripe, data(page.text, "secret"), "4000000000000002")
    assert declined.status_code == 402
    intent = data(page.text, "secret").split("_secret_")[0]
    refused = await stripe_portal.client.post(f"{path}/actions/add-stripe-card",
                                              data={"csrf": csrf, "setup_intent": intent})
    assert refused.status_code == 303 and refused.headers["location"].endswith("/cards?error=declined-card_declined")
    shown = (await stripe_portal.client.get(refused.headers["location"])).text
    assert "Your card was declined. Nothing was saved; please use another card." in shown
    # Another organization's SetupIntent, even a succeeded one, is not this organization's card.
    _, theirs = await cards_page(stripe_portal, keys.other_owner)
    confirmed = await confirm_as_stripe_js(localstripe, data(theirs.text, "secret"), "4242424242424242")
    assert confirmed.json()["status"] == "succeeded"
    foreign = await stripe_portal.client.post(f"{path}/actions/add-stripe-card",
                                              data={"csrf": csrf, "setup_intent": confirmed.json()["id"]})
    assert foreign.headers["location"].endswith("/cards?error=not-found")
    forged = await stripe_portal.client.post(f"{path}/actions/add-stripe-card",
                                             data={"csrf": "0" * 64, "setup_intent": confirmed.json()["id"]})
    assert forged.headers["location"].endswith("/cards?error=csrf")
    assert await count_rows(db, PaymentMethod) == 0


def checkout_signature(order_id: str, payment_id: str, secret: str = RAZORPAY_SECRET) -> str:
    """Razorpay's documented signature of a Checkout payment, computed with the fake's key secret."""
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


async def test_a_razorpay_organizations_cards_page_opens_checkout_on_an_order_asking_for_a_token(
        razorpay_portal, razorpay_fake, keys):
    _, page = await cards_page(razorpay_portal, keys.owner)
    html = page.text
    assert 'name="token"' not in html and '<script src="https://checkout.razorpay.com/v1/checkout.js"' in html
    assert "Adding a card needs JavaScript" in html
    order = razorpay_fake.orders[data(html, "order")]
    assert order["token"] == {"frequency": "as_presented"} and order["customer_id"] == data(html, "customer")
    assert (order["amount"], order["currency"]) == (100, "IDR")  # Rp 1 in Razorpay's hundredths
    assert "Rp" in html and "authorises it and is refunded at once" in html
    policy = page.headers["content-security-policy"]
    assert "script-src https://checkout.razorpay.com 'nonce-" in policy and policy.count("script-src") == 1


async def test_a_card_razorpay_checkout_authorised_is_saved_once_its_signature_is_verified(
        razorpay_portal, razorpay_fake, keys, db):
    path, page = await cards_page(razorpay_portal, keys.owner)
    order_id = data(page.text, "order")
    payment_id = razorpay_fake.pay_in_checkout(order_id, network="Visa", last4="1111")
    form = {"csrf": field(page.text, "csrf"), "razorpay_order_id": order_id,
            "order_quote": field(page.text, "order_quote"), "razorpay_payment_id": payment_id,
            "make_default": "yes"}
    wrong = await razorpay_portal.client.post(f"{path}/actions/add-razorpay-card", data={
        **form, "razorpay_signature": checkout_signature(order_id, payment_id, "another secret")})
    assert wrong.headers["location"].endswith("/cards?error=card-signature")
    assert "could not be verified" in (await razorpay_portal.client.get(wrong.headers["location"])).text
    other_order = await razorpay_portal.client.post(f"{path}/actions/add-razorpay-card", data={
        **form, "razorpay_order_id": "order_Other",
        "razorpay_signature": checkout_signature("order_Other", payment_id)})
    assert other_order.headers["location"].endswith("/cards?error=card-signature")  # not this link's order
    assert await count_rows(db, PaymentMethod) == 0
    saved = await razorpay_portal.client.post(f"{path}/actions/add-razorpay-card", data={
        **form, "razorpay_signature": checkout_signature(order_id, payment_id)})
    assert saved.status_code == 303 and saved.headers["location"].endswith("/cards?notice=card-added")
    async with db.read() as session:
        [method] = (await session.scalars(select(PaymentMethod))).all()
    token = razorpay_fake.payments[payment_id]["token_id"]
    assert (method.gateway, method.gateway_payment_method_id, method.brand, method.last4, method.is_default) == (
        "razorpay", token, "Visa", "1111", True)
    assert razorpay_fake.tokens[token] == data(page.text, "customer")
    # the authorisation payment (Rp 1, captured) is given back in full: saving a card costs nothing
    assert razorpay_fake.refunded(payment_id) == razorpay_fake.payments[payment_id]["amount"] == 100


async def test_a_refused_refund_of_the_authorisation_keeps_the_card_and_is_logged(
        razorpay_portal, razorpay_fake, keys, db, caplog):
    path, page = await cards_page(razorpay_portal, keys.owner)
    order_id = data(page.text, "order")
    payment_id = razorpay_fake.pay_in_checkout(order_id)
    razorpay_fake.payments[payment_id]["status"] = "authorized"  # Razorpay refunds only captured payments
    saved = await razorpay_portal.client.post(f"{path}/actions/add-razorpay-card", data={
        "csrf": field(page.text, "csrf"), "razorpay_order_id": order_id,
        "order_quote": field(page.text, "order_quote"), "razorpay_payment_id": payment_id,
        "razorpay_signature": checkout_signature(order_id, payment_id), "make_default": "yes"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("/cards?notice=card-added")
    assert await count_rows(db, PaymentMethod) == 1 and razorpay_fake.refunded(payment_id) == 0
    [record] = [r for r in caplog.records if r.name == "billing_graphql.services.payments.razorpay_methods"]
    assert record.levelname == "WARNING" and payment_id in record.getMessage()
    assert "not refundable" in record.getMessage()
