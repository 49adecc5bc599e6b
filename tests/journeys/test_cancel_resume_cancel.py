"""Journey 5: a cancellation at the period's end, taken back (resume) before it happens, a renewal,
then a cancellation that ends the subscription at once; and, at that instant, another
organization that subscribes and cancels at once (new and churned in the same month).

Team: Rp 300,000 a month, no trial. Periods Apr 1-May 1, May 1-Jun 1 2027.
"""

from __future__ import annotations

from tests.journeys.conftest import PROCESSORS
from tests.journeys.laws import amount
from tests.journeys.steps import (CANCEL, RESUME, SUBSCRIBE, billed, card, charged_at_the_processor, figures, plan,
                                  subscription)

pytestmark = PROCESSORS  # once with the sandbox, once with Stripe


async def test_cancel_at_period_end_then_resume_then_cancel_immediately(ledger):
    await ledger.begin("2027-04-01T00:00:00Z")
    team = await ledger.tenant("Fickle Co", "fickle")
    plan_id = await plan(ledger, "team", 300000, trialDays=0)
    await card(ledger, team)
    await ledger.check("catalog and a card", mrr=0, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1})
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": plan_id}}, token=team.owner)
    assert figures(subscribed["invoice"]) == billed(300000)
    await ledger.check("subscribed", mrr=300000, events={
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Apr 10: cancel at the period's end; nothing changes but the flag, and MRR still counts it.
    await ledger.at("2027-04-10T00:00:00Z")
    canceled = (await ledger.mutate(CANCEL, {"i": {"reason": "too dear"}}, token=team.owner))["subscription"]
    assert (canceled["status"], canceled["cancelAtPeriodEnd"], canceled["endedAt"]) == ("ACTIVE", True, None)
    await ledger.check("cancel scheduled", mrr=300000, events={"subscription.updated": 1})

    # Apr 20: resumed before the end; May 1 renews as if nothing happened.
    await ledger.at("2027-04-20T00:00:00Z")
    resumed = (await ledger.mutate(RESUME, token=team.owner))["subscription"]
    assert (resumed["status"], resumed["cancelAtPeriodEnd"]) == ("ACTIVE", False)
    await ledger.check("resumed", mrr=300000, events={"subscription.updated": 1})
    await ledger.at("2027-05-01T00:00:00Z")
    renewal = (await ledger.invoices(team))[-1]
    assert renewal["status"] == "PAID" and figures(renewal) == billed(300000)
    assert (await subscription(ledger, team))["currentPeriodEnd"] == "2027-06-01T00:00:00Z"
    await ledger.check("renewed", mrr=300000, events={"invoice.created": 1, "invoice.paid": 1})

    # May 10: cancel now. The subscription ends; MRR churns; no invoice, no credit.
    await ledger.at("2027-05-10T00:00:00Z")
    ended = (await ledger.mutate(CANCEL, {"i": {"immediately": True}}, token=team.owner))["subscription"]
    assert (ended["status"], ended["endedAt"]) == ("CANCELED", "2027-05-10T00:00:00Z")
    assert await subscription(ledger, team) is None
    report = await ledger.check("canceled now", mrr=0, events={"subscription.canceled": 1})
    may = {month["month"]: month for month in report["months"]}["2027-05"]
    assert (amount(may["churnedMrr"]), may["churnedSubscriptions"]) == (300000, 1)
    assert len(await ledger.invoices(team)) == 2

    # The same instant, another organization subscribes and cancels at once: new and churned both.
    blink = await ledger.tenant("Blink Co", "blink")
    await card(ledger, blink)
    await ledger.check("another organization", mrr=0, events={"organization.created": 1, "payment_method.added": 1})
    assert figures((await ledger.mutate(SUBSCRIBE, {"i": {"planId": plan_id}}, token=blink.owner))["invoice"]) == \
        billed(300000)
    gone = (await ledger.mutate(CANCEL, {"i": {"immediately": True}}, token=blink.owner))["subscription"]
    assert (gone["status"], gone["endedAt"]) == ("CANCELED", "2027-05-10T00:00:00Z")
    report = await ledger.check("subscribed and canceled in one instant", mrr=0, events={
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1, "subscription.canceled": 1})
    may = {month["month"]: month for month in report["months"]}["2027-05"]
    assert (may["newSubscriptions"], may["churnedSubscriptions"]) == (1, 2)
    assert (amount(may["newMrr"]), amount(may["churnedMrr"])) == (300000, 600000)

    # Jun 1 passes without a renewal.
    await ledger.at("2027-06-01T00:00:00Z")
    report = await ledger.check("nothing renews", mrr=0, events={})
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-03": 0, "2027-04": 333000, "2027-05": 333000 + 333000, "2027-06": 0}
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
