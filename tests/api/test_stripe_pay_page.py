"""Invoice.paymentUrl for a Stripe charge that needs the customer's confirmation (3-D Secure):
GET /invoices/{id}/pay serves Stripe.js with the PaymentIntent's client secret and the
publishable key, to the invoice's organization only; Stripe's payment_intent.succeeded then
pays the invoice. Over HTTP, on both databases, against localstripe."""

from __future__ import annotations

import uuid

import pytest

from tests.api.test_stripe import (  # noqa: F401 (fixtures)
    ADD,
    card,
    deliver,
    event,
    gateway_for,
    localstripe,
    signed,
    stripe_api,
)
from tests.helpers import gid
from tests.services.test_invoicing import new_invoice

PAY = """mutation($i: PayInvoiceInput!) { payInvoice(input: $i) {
  invoice { id status paymentUrl } payment { status gatewayPaymentId } errors { code message } } }"""
INVOICE = "query($id: ID!) { invoice(id: $id) { status paymentUrl amountDue { amount } } }"


async def three_d_secure_card(localstripe) -> str:
    """Stripe's 3-D Secure test card, made at Stripe as Stripe.js makes it."""
    method = await gateway_for(localstripe).client.v1.payment_methods.create_async(
        {"type": "card", "card": {"number": "4000002500003155", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    return method.id


@pytest.fixture
async def needs_action(stripe_api, localstripe, db, keys):
    """An invoice whose Stripe charge waits for 3-D Secure: (invoice id, PaymentIntent id)."""
    added = await stripe_api.ok(ADD, {"input": card(await three_d_secure_card(localstripe))}, token=keys.owner)
    assert added["addPaymentMethod"]["errors"] == []
    invoice = await new_invoice(db, keys.organization_id, amount=1900, finalize=True)
    paid = (await stripe_api.ok(PAY, {"i": {"invoiceId": gid("Invoice", invoice.id)}}, token=keys.owner))["payInvoice"]
    assert paid["invoice"]["status"] == "OPEN" and paid["payment"]["status"] == "FAILED", paid
    intent = await gateway_for(localstripe).client.v1.payment_intents.retrieve_async(
        paid["payment"]["gatewayPaymentId"])
    assert (intent.status, intent.amount) == ("requires_action", 2109 * 100)  # Rp 1,900 + PPN, in hundredths
    return invoice.id, intent.id


async def test_a_charge_needing_action_sets_payment_url_to_the_pay_page(stripe_api, needs_action, keys):
    invoice_id, _ = needs_action
    shown = (await stripe_api.ok(INVOICE, {"id": gid("Invoice", invoice_id)}, token=keys.owner))["invoice"]
    assert shown["status"] == "OPEN"
    assert shown["paymentUrl"] == f"http://localhost:8000/invoices/{invoice_id}/pay"


async def test_the_pay_page_serves_stripe_js_with_the_client_secret_to_the_invoices_organization_only(
        stripe_api, needs_action, keys):
    invoice_id, intent_id = needs_action
    path = f"/invoices/{invoice_id}/pay"
    page = await stripe_api.client.get(path, headers={"authorization": f"Bearer {keys.owner}"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'data-client-secret="{intent_id}_secret_' in page.text and 'data-publishable-key="pk_test_api"' in page.text
    assert "stripe.confirmCardPayment(el.dataset.clientSecret)" in page.text
    assert "https://js.stripe.com" in page.headers["content-security-policy"]
    staff = await stripe_api.client.get(path, headers={"authorization": f"Bearer {keys.super_admin}"})
    assert staff.status_code == 200
    for headers, status in (({"authorization": f"Bearer {keys.other_owner}"}, 404), ({}, 401)):
        refused = await stripe_api.client.get(path, headers=headers)
        assert refused.status_code == status and intent_id not in refused.text
    missing = await stripe_api.client.get(f"/invoices/{uuid.uuid4()}/pay",
                                          headers={"authorization": f"Bearer {keys.owner}"})
    assert missing.status_code == 404


async def test_payment_intent_succeeded_pays_the_invoice_and_the_page_is_gone(stripe_api, needs_action, keys,
                                                                              localstripe):
    invoice_id, intent_id = needs_action
    intent = await gateway_for(localstripe).client.v1.payment_intents.retrieve_async(intent_id)
    succeeded = {**intent.to_dict(), "status": "succeeded"}  # after stripe.confirmCardPayment in the browser
    response = await deliver(stripe_api, *signed(event("payment_intent.succeeded", succeeded)))
    assert response.status_code == 200, response.text
    shown = (await stripe_api.ok(INVOICE, {"id": gid("Invoice", invoice_id)}, token=keys.owner))["invoice"]
    assert (shown["status"], shown["amountDue"]["amount"]) == ("PAID", "0")
    page = await stripe_api.client.get(f"/invoices/{invoice_id}/pay", headers={"authorization": f"Bearer {keys.owner}"})
    assert page.status_code == 404
