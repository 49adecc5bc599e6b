"""Journey 4: a REPEATING coupon (20% off the invoices of the first 3 billing months), a downgrade
scheduled for the period's end, an immediate downgrade whose credit (tax included) becomes account
credit, and that credit spent on the first invoice after the coupon has run out.

Pro Rp 500,000, Lite Rp 200,000, Mini Rp 100,000 a month, no trial. Periods from Apr 1 2027;
June has 30 days, so on Jun 16 half of it is left.
"""

from __future__ import annotations

from fractions import Fraction

from tests.journeys.conftest import PROCESSORS
from tests.journeys.laws import amount
from tests.journeys.steps import (CHANGE_PLAN, CREATE_COUPON, SUBSCRIBE, billed, card, charged_at_the_processor,
                                  figures, lines, plan, prorate, subscription, tax)

pytestmark = PROCESSORS  # once with the sandbox, once with Stripe


async def test_repeating_coupon_scheduled_downgrade_and_credit_spent(ledger):
    await ledger.begin("2027-04-01T00:00:00Z")
    shop = await ledger.tenant("Thrifty Co", "thrifty")
    pro = await plan(ledger, "pro", 500000, trialDays=0)
    lite = await plan(ledger, "lite", 200000, trialDays=0)
    mini = await plan(ledger, "mini", 100000, trialDays=0)
    await ledger.mutate(CREATE_COUPON, {"i": {"code": "SAVE20", "discountType": "PERCENTAGE", "discountValue": "20",
                                              "duration": "REPEATING", "durationInMonths": 3}})
    await card(ledger, shop)
    await ledger.check("catalog, coupon and a card", mrr=0, events={
        "organization.created": 1, "plan.created": 3, "coupon.created": 1, "payment_method.added": 1})

    # Apr 1: Pro with SAVE20: 500,000 - 100,000 + PPN on 400,000.
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": pro, "couponCode": "save20"}}, token=shop.owner)
    invoice = subscribed["invoice"]
    assert lines(invoice) == [("PLAN", "1", 500000)]
    assert figures(invoice) == billed(500000, discount=100000) and invoice["total"]["amount"] == "444000"
    await ledger.check("subscribed with the coupon", mrr=400000, events={
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Apr 16: the downgrade to Lite, at the period's end: nothing billed now.
    await ledger.at("2027-04-16T00:00:00Z")
    scheduled = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": lite, "effective": "PERIOD_END"}}, token=shop.owner)
    assert scheduled["invoice"] is None and scheduled["subscription"]["plan"]["slug"] == "pro"
    assert scheduled["subscription"]["pendingChange"] == {"plan": {"slug": "lite"}, "billingPeriod": "MONTHLY",
                                                          "effectiveAt": "2027-05-01T00:00:00Z"}
    await ledger.check("downgrade scheduled", events={"subscription.updated": 1})

    # May 1 and Jun 1: Lite, still 20% off (the coupon's 2nd and 3rd months).
    await ledger.at("2027-05-01T00:00:00Z")
    may = (await ledger.invoices(shop))[-1]
    assert lines(may) == [("PLAN", "1", 200000)] and figures(may) == billed(200000, discount=40000)
    state = await subscription(ledger, shop)
    assert state["plan"]["slug"] == "lite" and state["pendingChange"] is None
    await ledger.check("renewed on Lite", mrr=160000, events={
        "subscription.updated": 1, "invoice.created": 1, "invoice.paid": 1})
    await ledger.at("2027-06-01T00:00:00Z")
    june = (await ledger.invoices(shop))[-1]
    assert figures(june) == billed(200000, discount=40000) and june["total"]["amount"] == "177600"
    await ledger.check("third month of the coupon", events={"invoice.created": 1, "invoice.paid": 1})

    # Jun 16: down to Mini now: credit 100,000, charge 50,000; the net -50,000 and its tax -5,500
    # become account credit.
    await ledger.at("2027-06-16T00:00:00Z")
    downgraded = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": mini}}, token=shop.owner)
    net = prorate(100000, Fraction(1, 2)) - prorate(200000, Fraction(1, 2))
    assert net == -50000 and tax(net) == -5500
    assert downgraded["creditAdded"]["amount"] == "55500"
    ledger.credit[shop.id] += 55500
    await ledger.check("downgraded now, credit kept", events={"subscription.updated": 1})

    # Jul 1: the coupon has run out; Mini's full price, the credit spent first.
    await ledger.at("2027-07-01T00:00:00Z")
    july = (await ledger.invoices(shop))[-1]
    assert lines(july) == [("PLAN", "1", 100000)]
    assert figures(july) == billed(100000, credit=55500) and july["amountPaid"]["amount"] == "55500"
    ledger.credit[shop.id] -= 55500
    report = await ledger.check("credit spent", mrr=100000, events={"invoice.created": 1, "invoice.paid": 1})
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-03": 0, "2027-04": 444000, "2027-05": 177600, "2027-06": 177600, "2027-07": 55500}
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
