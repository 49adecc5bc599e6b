"""Journey 6: a partner is granted an organization and reads its usage snapshots across a renewal:
without `month` the snapshot is the billing period in force (the tenant's own `usage`), with
`month` the billing period that starts in that month, each with its period's bounds.

Chat: Rp 200,000 a month, no trial, 1,000 messages a month, Rp 500 per message above them.
Periods Apr 15-May 15, May 15-Jun 15 2027.
"""

from __future__ import annotations

from tests.journeys.conftest import PROCESSORS
from tests.journeys.laws import amount
from tests.journeys.steps import SUBSCRIBE, billed, card, charged_at_the_processor, figures, lines, plan, record

SNAPSHOTS = """query($ids: [ID!], $month: String) { usageSnapshots(organizationIds: $ids, month: $month) {
  edges { node { organization { id } month periodStart periodEnd
                 metrics { metric { code } used limit overage } } } } }"""

pytestmark = PROCESSORS  # once with the sandbox, once with Stripe


async def snapshot(ledger, partner: str, tenant, month: str | None = None) -> dict:
    data = await ledger.gql(SNAPSHOTS, {"ids": [tenant.id], "month": month}, token=partner)
    (edge,) = data["usageSnapshots"]["edges"]
    node = edge["node"]
    shown = {m["metric"]["code"]: (m["used"], m["limit"], m["overage"]) for m in node["metrics"]}["messages"]
    # Counters are BigInt: digits in a JSON string.
    assert all(isinstance(value, str) and value.isdigit() for value in shown), shown
    messages = tuple(int(value) for value in shown)
    return {"month": node["month"], "periodStart": node["periodStart"], "periodEnd": node["periodEnd"],
            "messages": messages}


async def test_partner_snapshots_follow_the_billing_period_across_a_renewal(ledger):
    await ledger.begin("2027-04-15T00:00:00Z")
    chat = await ledger.tenant("Chatty Co", "chatty")
    plan_id = await plan(ledger, "chat", 200000, trialDays=0, overageMessagePrice="500",
                         limits=[{"metric": "messages", "limit": 1000}])
    await card(ledger, chat)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": plan_id}}, token=chat.owner)
    assert figures(subscribed["invoice"]) == billed(200000)
    partner = await ledger.grant_partner(chat)
    await ledger.check("subscribed and granted", mrr=200000, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1,
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})
    april = {"month": "2027-04", "periodStart": "2027-04-15T00:00:00Z", "periodEnd": "2027-05-15T00:00:00Z"}
    assert await snapshot(ledger, partner, chat) == {**april, "messages": (0, 1000, 0)}

    # Apr 20: 850 messages (past 80% of the limit).
    await ledger.at("2027-04-20T00:00:00Z")
    await record(ledger, chat, "messages", 850, "m-1")
    await ledger.check("850 messages", mrr=200000, events={"usage.limit_approaching": 1})
    assert await snapshot(ledger, partner, chat) == {**april, "messages": (850, 1000, 0)}

    # May 3: a new calendar month, the same billing period: 250 more, 100 over the limit.
    await ledger.at("2027-05-03T00:00:00Z")
    assert await snapshot(ledger, partner, chat) == {**april, "messages": (850, 1000, 0)}
    await record(ledger, chat, "messages", 250, "m-2")
    await ledger.check("1,100 messages", mrr=200000, events={"usage.limit_reached": 1})
    assert await snapshot(ledger, partner, chat) == {**april, "messages": (1100, 1000, 100)}

    # May 15: the renewal bills the overage (100 x Rp 500); the new period starts empty.
    await ledger.at("2027-05-15T00:00:00Z")
    renewal = (await ledger.invoices(chat))[-1]
    assert lines(renewal) == [("PLAN", "1", 200000), ("USAGE", "100", 50000)]
    assert figures(renewal) == billed(250000) and renewal["total"]["amount"] == "277500"
    await ledger.check("renewed with overage", mrr=200000, events={"invoice.created": 1, "invoice.paid": 1})
    may = {"month": "2027-05", "periodStart": "2027-05-15T00:00:00Z", "periodEnd": "2027-06-15T00:00:00Z"}
    assert await snapshot(ledger, partner, chat) == {**may, "messages": (0, 1000, 0)}
    assert await snapshot(ledger, partner, chat, "2027-04") == {**april, "messages": (1100, 1000, 100)}

    # May 20: usage of the new period; the old one is still there by its month.
    await ledger.at("2027-05-20T00:00:00Z")
    await record(ledger, chat, "messages", 50, "m-3")
    report = await ledger.check("new period's usage", mrr=200000, events={})
    assert await snapshot(ledger, partner, chat) == {**may, "messages": (50, 1000, 0)}
    assert await snapshot(ledger, partner, chat, "2027-05") == {**may, "messages": (50, 1000, 0)}
    assert await snapshot(ledger, partner, chat, "2027-04") == {**april, "messages": (1100, 1000, 100)}
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-03": 0, "2027-04": 222000, "2027-05": 277500}
    await charged_at_the_processor(ledger)
    ledger.check_event_shapes()
