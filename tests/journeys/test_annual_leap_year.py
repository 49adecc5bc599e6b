"""Journey 7: an annual plan bought on Feb 29 2028, upgraded mid-year, renewed on Feb 28 2029
(the anchor day clamped to the month's end), and again on Feb 28 2030.

Team: Rp 100,000 a month, Rp 1,000,000 a year; Business: Rp 200,000 / Rp 2,000,000 a year.
The first period Feb 29 2028-Feb 28 2029 is 365 days; on Oct 5 2028, 146 of them are left (2/5).
MRR of an annual price is a twelfth, half up: 1,000,000 / 12 = 83,333; 2,000,000 / 12 = 166,667.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

from tests.journeys.conftest import PROCESSORS
from tests.journeys.laws import amount
from tests.journeys.steps import (CHANGE_PLAN, SUBSCRIBE, billed, card, charged_at_the_processor, figures, lines, plan,
                                  prorate, subscription)

pytestmark = PROCESSORS  # once with the sandbox, once with Stripe


async def test_annual_plan_across_february_29_with_a_mid_year_upgrade(ledger):
    start, end = datetime.fromisoformat("2028-02-29T00:00:00+00:00"), datetime.fromisoformat("2029-02-28T00:00:00+00:00")
    upgrade_at = datetime.fromisoformat("2028-10-05T00:00:00+00:00")
    remaining = Fraction(int((end - upgrade_at).total_seconds()), int((end - start).total_seconds()))
    assert ((end - start).days, (end - upgrade_at).days, remaining) == (365, 146, Fraction(2, 5))

    await ledger.begin("2028-02-29T00:00:00Z")
    leap = await ledger.tenant("Leap Co", "leapco")
    team = await plan(ledger, "team", 100000, trialDays=0)
    business = await plan(ledger, "business", 200000, trialDays=0)
    await card(ledger, leap)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": team, "billingPeriod": "ANNUAL"}}, token=leap.owner)
    assert lines(subscribed["invoice"]) == [("PLAN", "1", 1000000)]
    assert figures(subscribed["invoice"]) == billed(1000000) and subscribed["invoice"]["total"]["amount"] == "1110000"
    state = subscribed["subscription"]
    assert (state["currentPeriodStart"], state["currentPeriodEnd"]) == ("2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z")
    await ledger.check("annual subscription on Feb 29", mrr=83333, events={
        "organization.created": 1, "plan.created": 2, "payment_method.added": 1,
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Oct 5: the upgrade; 2/5 of the year is left.
    await ledger.at("2028-10-05T00:00:00Z")
    upgraded = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": business}}, token=leap.owner)
    credit, charge = prorate(1000000, remaining), prorate(2000000, remaining)
    assert (credit, charge) == (400000, 800000)
    proration = upgraded["invoice"]
    assert [(kind, value) for kind, _, value in lines(proration)] == [
        ("PRORATION_CREDIT", -credit), ("PRORATION_CHARGE", charge)]
    assert proration["status"] == "PAID" and figures(proration) == billed(400000)  # 400,000 + 44,000
    assert upgraded["subscription"]["currentPeriodEnd"] == "2029-02-28T00:00:00Z"
    report = await ledger.check("upgraded mid-year", mrr=166667, events={
        "subscription.updated": 1, "invoice.created": 1, "invoice.paid": 1})
    october = {month["month"]: month for month in report["months"]}["2028-10"]
    assert amount(october["expansionMrr"]) == 166667 - 83333

    # Feb 28 2029: the renewal on Business; the next period ends Feb 28 2030 (no Feb 29).
    await ledger.at("2029-02-28T00:00:00Z")
    renewal = (await ledger.invoices(leap))[-1]
    assert lines(renewal) == [("PLAN", "1", 2000000)]
    assert figures(renewal) == billed(2000000) and renewal["total"]["amount"] == "2220000"
    state = await subscription(ledger, leap)
    assert (state["currentPeriodStart"], state["currentPeriodEnd"]) == ("2029-02-28T00:00:00Z", "2030-02-28T00:00:00Z")
    report = await ledger.check("renewed a year on", mrr=166667, events={"invoice.created": 1, "invoice.paid": 1})
    revenue = {month["month"]: amount(month["netRevenue"]) for month in report["months"]}
    assert (revenue["2028-02"], revenue["2028-10"], revenue["2029-02"]) == (1110000, 444000, 2220000)
    assert sum(revenue.values()) == 1110000 + 444000 + 2220000
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
