"""Journey 1: a trial with seats and an add-on, its conversion, a month of overage, an upgrade
in the middle of a period, and the renewal on the new plan; a fifth agent joins between renewals.

Growth: Rp 300,000 a month, 2 agents included, Rp 50,000 per agent above them, 1,000 messages a
month, Rp 100 per message above them, 1,000 API calls a month (limited, with no price of its own:
never charged), 14 days' trial. Scale: Rp 600,000, otherwise the same but
5,000 messages. The add-on "inbox": Rp 100,000 a month, flat. The organization runs 4 agents,
5 from May 10.
Periods (anchored on the trial's end, Apr 1): Apr 1-May 1, May 1-Jun 1, Jun 1-Jul 1 (30 days).
"""

from __future__ import annotations

from fractions import Fraction

from tests.journeys.conftest import PROCESSORS
from tests.journeys.laws import amount
from tests.journeys.steps import (ATTACH, CHANGE_PLAN, CREATE_ADDON, CREATE_PLAN, SUBSCRIBE, billed, card,
                                  charged_at_the_processor, figures, lines, plan, prorate, record, subscription, tax)

LIMITS = [{"metric": "messages", "limit": 1000}, {"metric": "api_calls", "limit": 1000}]
ADDONS = """query { subscription { addons { id addonId slug } } }"""

pytestmark = PROCESSORS  # once with the sandbox, once with Stripe


async def test_trial_with_seats_and_an_addon_converts_pays_overage_upgrades_and_renews(ledger):
    await ledger.begin("2027-03-18T00:00:00Z")
    acme = await ledger.tenant("Trial Co", "trialco")
    growth = await plan(ledger, "growth", 300000, perAgentPrice="50000", includedAgents=2, overageMessagePrice="100",
                        limits=LIMITS, trialDays=14)
    scale = await plan(ledger, "scale", 600000, perAgentPrice="50000", includedAgents=2, overageMessagePrice="100",
                       limits=[{"metric": "messages", "limit": 5000}], trialDays=14)
    inbox = (await ledger.mutate(CREATE_ADDON, {"i": {"name": "Inbox", "slug": "inbox", "priceMonthly": "100000"}}))[
        "addon"]["id"]
    await card(ledger, acme)
    # A feature key the catalog does not know is refused, naming the field, and writes nothing.
    refused = await ledger.gql(CREATE_PLAN, {"i": {"name": "Odd", "slug": "odd", "basePriceMonthly": "1000",
                                                   "features": [{"key": "ai_agent", "enabled": True}]}})
    assert [(e["code"], e["field"] is not None) for e in refused["createPlan"]["errors"]] == [("VALIDATION", True)]
    await ledger.check("catalog and a card", mrr=0, events={
        "organization.created": 1, "plan.created": 2, "addon.created": 1, "payment_method.added": 1})

    # Mar 18: the trial starts; 4 agents join; the add-on is attached during the trial (no invoice).
    started = await ledger.mutate(SUBSCRIBE, {"i": {"planId": growth}}, token=acme.owner)
    assert started["subscription"]["status"] == "TRIALING" and started["invoice"] is None
    assert started["subscription"]["trialEndsAt"] == "2027-04-01T00:00:00Z"
    await ledger.check("trial started", events={"subscription.created": 1}, mrr=0)
    await record(ledger, acme, "agents", 4, "agents-1")
    attached = await ledger.mutate(ATTACH, {"i": {"addonId": inbox}}, token=acme.owner)
    assert attached["invoice"] is None and [a["slug"] for a in attached["subscription"]["addons"]] == ["inbox"]
    (attachment,) = (await ledger.gql(ADDONS, token=acme.owner))["subscription"]["addons"]
    assert attachment["addonId"] == inbox and attachment["id"] not in (None, inbox)  # the attachment's own id
    await ledger.check("4 agents and an add-on during the trial", events={"subscription.updated": 1}, mrr=0)

    # Apr 1: the trial ends; the first invoice bills the plan, 2 seats above the included 2, the add-on.
    await ledger.at("2027-04-01T00:00:00Z")
    (conversion,) = await ledger.invoices(acme)
    assert lines(conversion) == [("PLAN", "1", 300000), ("SEATS", "2", 100000), ("ADDON", "1", 100000)]
    assert figures(conversion) == billed(500000) and conversion["total"]["amount"] == "555000"
    assert (await subscription(ledger, acme))["status"] == "ACTIVE"
    report = await ledger.check("trial converted", mrr=500000, events={
        "subscription.trial_will_end": 1, "invoice.created": 1, "invoice.paid": 1, "subscription.updated": 1})
    assert amount(report["months"][-1]["newMrr"]) == 500000

    # Apr 10: 1,500 messages, 500 above the limit; 1,900 API calls, 900 above theirs.
    await ledger.at("2027-04-10T00:00:00Z")
    await record(ledger, acme, "messages", 1500, "messages-1")
    await record(ledger, acme, "api_calls", 1900, "api-calls-1")
    await ledger.check("1,500 messages and 1,900 API calls", mrr=500000,
                       events={"usage.limit_approaching": 2, "usage.limit_reached": 2})

    # May 1: the renewal bills the new period and April's message overage: 500 x Rp 100 (the API
    # calls above their limit are not charged: only messages have a price).
    await ledger.at("2027-05-01T00:00:00Z")
    may = (await ledger.invoices(acme))[-1]
    assert lines(may) == [("PLAN", "1", 300000), ("SEATS", "2", 100000), ("ADDON", "1", 100000),
                          ("USAGE", "500", 50000)]
    assert figures(may) == billed(550000) and may["total"]["amount"] == "610500"
    await ledger.check("renewal with overage", mrr=500000, events={"invoice.created": 1, "invoice.paid": 1})

    # May 10: a fifth agent joins mid-period: MRR counts the seat at once (what the next renewal bills).
    await ledger.at("2027-05-10T00:00:00Z")
    await record(ledger, acme, "agents", 5, "agents-2")
    report = await ledger.check("a fifth agent", mrr=550000, events={})
    assert amount(report["months"][-1]["expansionMrr"]) == 50000
    assert (await subscription(ledger, acme))["agentCount"] == 5

    # Jun 1: the renewal bills 3 seats; Jun 16: half of the 30-day period left, the upgrade to Scale.
    await ledger.at("2027-06-01T00:00:00Z")
    june = (await ledger.invoices(acme))[-1]
    assert lines(june) == [("PLAN", "1", 300000), ("SEATS", "3", 150000), ("ADDON", "1", 100000)]
    assert figures(june) == billed(550000)
    await ledger.check("renewal with 3 seats", mrr=550000, events={"invoice.created": 1, "invoice.paid": 1})
    await ledger.at("2027-06-16T00:00:00Z")
    upgraded = await ledger.mutate(CHANGE_PLAN, {"i": {"planId": scale}}, token=acme.owner)
    half = Fraction(1, 2)
    credit, charge = prorate(550000, half), prorate(850000, half)
    assert (credit, charge) == (275000, 425000)
    proration = upgraded["invoice"]
    assert [(kind, value) for kind, _, value in lines(proration)] == [
        ("PRORATION_CREDIT", -credit), ("PRORATION_CHARGE", charge)]
    assert figures(proration) == billed(charge - credit) and proration["total"]["amount"] == str(150000 + tax(150000))
    report = await ledger.check("upgraded mid-period", mrr=850000, events={
        "subscription.updated": 1, "invoice.created": 1, "invoice.paid": 1})
    assert amount(report["months"][-1]["expansionMrr"]) == 300000

    # Jul 1: the renewal on Scale.
    await ledger.at("2027-07-01T00:00:00Z")
    july = (await ledger.invoices(acme))[-1]
    assert lines(july) == [("PLAN", "1", 600000), ("SEATS", "3", 150000), ("ADDON", "1", 100000)]
    assert figures(july) == billed(850000) and july["total"]["amount"] == "943500"
    report = await ledger.check("renewal on Scale", mrr=850000, events={"invoice.created": 1, "invoice.paid": 1})
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-02": 0, "2027-03": 0, "2027-04": 555000, "2027-05": 610500, "2027-06": 610500 + 166500,
        "2027-07": 943500}
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
