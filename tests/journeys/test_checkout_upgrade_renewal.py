"""Journey 2: a checkout pays the first invoice (no trial, no card saved beforehand), an upgrade
in the middle of the period is charged to the card the checkout kept, and the renewal too.

Starter: Rp 200,000 a month; Pro: Rp 400,000; and a free USD plan, which an IDR organization never
gets by default. Period Sep 1-Oct 1 2027 (30 days); the upgrade on Sep 16 leaves half of it.

Once with the sandbox (the client SDK's signed payment confirms the checkout) and once with
Stripe (Stripe.js confirms the PaymentIntent; ``payment_intent.succeeded`` completes the checkout).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from billing_graphql.gateways.sandbox import sign_payment
from tests.journeys.conftest import PROCESSORS, STRIPE_WEBHOOK_SECRET
from tests.journeys.laws import Ledger, Tenant, amount
from tests.journeys.steps import (CHANGE_PLAN, CONFIRM_CHECKOUT, PAYMENT_METHODS, START_CHECKOUT, billed,
                                  charged_at_the_processor, figures, lines, pay_checkout_with_stripe_js, plan, prorate,
                                  subscription)

pytestmark = PROCESSORS


INVOICE_BY_ID = "query($id: ID!) { invoice(id: $id) { id } }"


def invoice_key(invoice: dict) -> str:
    """The key `pdfUrl` uses (`/invoices/{key}.pdf`)."""
    return invoice["pdfUrl"].rsplit("/", 1)[1].removesuffix(".pdf")


async def pay_checkout(ledger: Ledger, tenant: Tenant, order: str, request: pytest.FixtureRequest) -> None:
    """The customer pays the checkout with the ledger's processor."""
    if ledger.processor == "stripe":
        await pay_checkout_with_stripe_js(ledger, request.getfixturevalue("localstripe"), order, STRIPE_WEBHOOK_SECRET)
        return
    confirmed = await ledger.mutate(CONFIRM_CHECKOUT, {"i": {
        "orderId": order, "paymentId": "pay_journey_2", "signature": sign_payment(order, "pay_journey_2")}},
        token=tenant.owner)
    assert confirmed["subscription"]["status"] == "ACTIVE" and confirmed["payment"]["status"] == "SUCCEEDED"
    assert confirmed["subscription"]["plan"]["slug"] == "starter" and figures(confirmed["invoice"]) == billed(200000)


async def test_checkout_then_upgrade_then_renewal_charge_the_card_the_checkout_kept(ledger, request):
    await ledger.begin("2027-09-01T00:00:00Z")
    shop = await ledger.tenant("Checkout Co", "checkoutco")
    starter = await plan(ledger, "starter", 200000, trialDays=14)
    pro = await plan(ledger, "pro", 400000, trialDays=14)
    await plan(ledger, "free-usd", 0, currency="USD", trialDays=0)
    await ledger.check("catalog", mrr=0, events={"organization.created": 1, "plan.created": 3})

    # Sep 1: the checkout (no plan named: the cheapest in the organization's currency, IDR) opens
    # the first invoice, then the customer pays it (the client SDK's payment, or Stripe.js).
    started = await ledger.mutate(START_CHECKOUT, {"i": {"gateway": ledger.processor}}, token=shop.owner)
    assert started["gateway"] == ledger.processor and started["amount"] == {"amount": "222000", "currency": "IDR"}
    assert figures(started["invoice"]) == billed(200000, paid=False)
    await ledger.check("checkout opened", mrr=0, events={"checkout.started": 1, "invoice.created": 1})
    await pay_checkout(ledger, shop, started["orderId"], request)
    state = await subscription(ledger, shop)
    assert (state["status"], state["plan"]["slug"]) == ("ACTIVE", "starter")
    (first,) = await ledger.invoices(shop)
    assert figures(first) == billed(200000) and [p["status"] for p in first["payments"]] == ["SUCCEEDED"]
    methods = (await ledger.gql(PAYMENT_METHODS, token=shop.owner))["paymentMethods"]
    assert [(method["gateway"], method["isDefault"]) for method in methods] == [(ledger.processor, True)], \
        "the card that paid the checkout is kept"
    await ledger.check("checkout paid", mrr=200000, events={
        "checkout.completed": 1, "invoice.paid": 1, "subscription.created": 1, "payment_method.added": 1})

    # Sep 16: the upgrade, charged at once to the kept card.
    await ledger.at("2027-09-16T00:00:00Z")
    upgraded = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": pro}}, token=shop.owner)
    credit, charge = prorate(200000, Fraction(1, 2)), prorate(400000, Fraction(1, 2))
    proration = upgraded["invoice"]
    assert [(kind, value) for kind, _, value in lines(proration)] == [
        ("PRORATION_CREDIT", -credit), ("PRORATION_CHARGE", charge)]
    assert proration["status"] == "PAID" and figures(proration) == billed(100000)  # 100,000 + 11,000
    report = await ledger.check("upgraded", mrr=400000, events={
        "subscription.updated": 1, "invoice.created": 1, "invoice.paid": 1})
    september = {month["month"]: month for month in report["months"]}["2027-09"]
    assert (amount(september["newMrr"]), amount(september["expansionMrr"])) == (200000, 200000)

    # Oct 1: the renewal on Pro, charged to the same card.
    await ledger.at("2027-10-01T00:00:00Z")
    renewal = (await ledger.invoices(shop))[-1]
    assert lines(renewal) == [("PLAN", "1", 400000)]
    assert renewal["status"] == "PAID" and figures(renewal) == billed(400000)
    assert (await subscription(ledger, shop))["status"] == "ACTIVE"
    report = await ledger.check("renewed on Pro", mrr=400000, events={"invoice.created": 1, "invoice.paid": 1})
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-08": 0, "2027-09": 222000 + 111000, "2027-10": 444000}

    # The owner downloads the renewal's PDF (at seed 003's path too) and mistypes an invoice id.
    owner = {"authorization": f"Bearer {shop.owner}"}
    pdf = await ledger.api.client.get(f"/invoices/{invoice_key(renewal)}/pdf", headers=owner)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF"), pdf.status_code
    typo = await ledger.api.post(INVOICE_BY_ID, {"id": "not-a-global-id"}, token=shop.owner)
    assert typo["data"] == {"invoice": None}
    assert [error["extensions"]["code"] for error in typo.get("errors", [])] == ["BAD_USER_INPUT"]
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
