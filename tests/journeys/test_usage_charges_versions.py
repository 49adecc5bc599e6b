"""Journey 9: a graduated usage charge billed in arrears, and two price changes of a plan in use
(issue 20): AT_RENEWAL moves the subscriber at its next renewal, NEW_SUBSCRIPTIONS keeps it on its
version while a new tenant pays the new price.

Meter: Rp 300,000 a month (annual left empty: 10 x monthly), no trial; messages GRADUATED with
1,000 included a month: billable units 1..4,000 at Rp 100, above at Rp 60 plus Rp 10,000 flat.
PPN: 12% of 11/12 of the subtotal (11%), half up.

- Jan 1 2027: subscribe: 300,000 + PPN 33,000 = 333,000.
- Jan 20: 6,000 messages: 5,000 billable: 4,000 x 100 = 400,000; 1,000 x 60 + 10,000 = 70,000.
- Feb 1: renewal: 300,000 + usage 470,000 = 770,000; PPN 84,700; total 854,700.
- Feb 5: Rp 350,000 a month and the first tier at Rp 80: PLAN_IN_USE without applyTo (nothing
  changes); AT_RENEWAL makes version 2 (annual 3,500,000); the upcoming invoice shows 350,000
  now, and the MRR is 350,000 (what the next renewal bills).
- Feb 10: 2,000 messages: 1,000 billable at version 1's Rp 100 = 100,000 (February ran on it).
- Mar 1: renewal: the move to version 2 (subscription.updated): 350,000 + 100,000 = 450,000;
  PPN 49,500; total 499,500.
- Mar 5: Rp 400,000 a month, NEW_SUBSCRIPTIONS: version 3 (annual 4,000,000); Meter's subscriber
  stays on version 2; a new tenant subscribes at 400,000 + 44,000 = 444,000. MRR 750,000.
- Mar 10: 3,000 messages: 2,000 billable at version 2's Rp 80 = 160,000.
- Apr 1: renewal: 350,000 + 160,000 = 510,000; PPN 56,100; total 566,100.
"""

from __future__ import annotations

from tests.journeys.laws import ERRORS, MONEY, amount
from tests.journeys.steps import SUBSCRIBE, billed, card, figures, lines, plan, record

UPDATE_PLAN = f"""mutation($i: UpdatePlanInput!) {{ updatePlan(input: $i) {{
  plan {{ version basePriceMonthly {MONEY} basePriceAnnual {MONEY}
          charges {{ model tiers {{ upTo unitAmount {{ amount }} flatAmount {{ amount }} }} }} }} {ERRORS} }} }}"""
PLAN = f"""query($id: ID!) {{ plan(id: $id) {{ version basePriceMonthly {MONEY} basePriceAnnual {MONEY} }} }}"""
UPCOMING = f"""query {{ subscription {{ planVersion pendingPlanVersion upcomingInvoice {{
  lines {{ kind description quantity amount {{ amount }}
          tierBreakdown {{ fromUnit toUnit units unitAmount {MONEY} flatAmount {MONEY} amount {MONEY} }} }}
  subtotal {{ amount }} tax {{ amount }} total {{ amount }} }} }} }}"""
TIERS = [{"upTo": 4000, "unitAmount": "100"}, {"upTo": None, "unitAmount": "60", "flatAmount": "10000"}]
NEW_TIERS = [{"upTo": 4000, "unitAmount": "80"}, {"upTo": None, "unitAmount": "60", "flatAmount": "10000"}]


async def upcoming(ledger, tenant) -> dict:
    return (await ledger.gql(UPCOMING, token=tenant.owner))["subscription"]


async def test_graduated_usage_and_price_changes_at_renewal_and_for_new_subscriptions(ledger):
    await ledger.begin("2027-01-01T00:00:00Z")
    meter = await ledger.tenant("Meter Co", "meter")
    plan_id = await plan(ledger, "meter", 300000, trialDays=0, charges=[
        {"metric": "messages", "model": "GRADUATED", "includedUnits": 1000, "tiers": TIERS}])
    await card(ledger, meter)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": plan_id}}, token=meter.owner)
    assert figures(subscribed["invoice"]) == billed(300000)
    assert subscribed["invoice"]["total"]["amount"] == "333000"
    await ledger.check("subscribed", mrr=300000, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1,
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Jan 20: 6,000 messages; the upcoming invoice shows the usage so far, tier by tier.
    await ledger.at("2027-01-20T00:00:00Z")
    await record(ledger, meter, "messages", 6000, "m-1")
    preview = (await upcoming(ledger, meter))["upcomingInvoice"]
    (usage,) = [line for line in preview["lines"] if line["kind"] == "USAGE"]
    assert (usage["quantity"], usage["amount"]) == ("5000", {"amount": "470000"})
    assert usage["description"] == "Messages (graduated tiers) above the 1,000 included per month"
    assert usage["tierBreakdown"] == [
        {"fromUnit": "1", "toUnit": "4000", "units": "4000", "unitAmount": {"amount": "100", "currency": "IDR"},
         "flatAmount": {"amount": "0", "currency": "IDR"}, "amount": {"amount": "400000", "currency": "IDR"}},
        {"fromUnit": "4001", "toUnit": None, "units": "1000", "unitAmount": {"amount": "60", "currency": "IDR"},
         "flatAmount": {"amount": "10000", "currency": "IDR"}, "amount": {"amount": "70000", "currency": "IDR"}}]
    assert (preview["subtotal"], preview["tax"], preview["total"]) == (
        {"amount": "770000"}, {"amount": "84700"}, {"amount": "854700"})
    await ledger.check("6,000 messages", mrr=300000, events={})

    # Feb 1: the renewal bills January's usage in arrears.
    await ledger.at("2027-02-01T00:00:00Z")
    renewal = (await ledger.invoices(meter))[-1]
    assert lines(renewal) == [("PLAN", "1", 300000), ("USAGE", "5000", 470000)]
    assert figures(renewal) == billed(770000) and renewal["total"]["amount"] == "854700"
    await ledger.check("renewed with usage", mrr=300000, events={"invoice.created": 1, "invoice.paid": 1})

    # Feb 5: a price change of a plan in use needs applyTo; nothing changes without it.
    await ledger.at("2027-02-05T00:00:00Z")
    change = {"id": plan_id, "basePriceMonthly": "350000",
              "charges": [{"metric": "messages", "model": "GRADUATED", "includedUnits": 1000, "tiers": NEW_TIERS}]}
    refused = (await ledger.gql(UPDATE_PLAN, {"i": change}))["updatePlan"]
    assert refused["plan"] is None
    assert [(error["code"], error["field"]) for error in refused["errors"]] == [("PLAN_IN_USE", "applyTo")]
    kept = (await ledger.gql(PLAN, {"id": plan_id}))["plan"]
    assert (kept["version"], amount(kept["basePriceMonthly"])) == (1, 300000)
    await ledger.check("price change refused", mrr=300000, events={})

    moved = await ledger.mutate(UPDATE_PLAN, {"i": {**change, "applyTo": "AT_RENEWAL"}})
    assert (moved["plan"]["version"], amount(moved["plan"]["basePriceMonthly"]),
            amount(moved["plan"]["basePriceAnnual"])) == (2, 350000, 3500000)
    state = await upcoming(ledger, meter)
    assert (state["planVersion"], state["pendingPlanVersion"]) == (1, 2)
    assert [(line["kind"], line["amount"]["amount"]) for line in state["upcomingInvoice"]["lines"]] == [
        ("PLAN", "350000")]  # February's usage so far: none
    await ledger.check("price change at renewal", mrr=350000, events={"plan.updated": 1})

    # Feb 10: February's usage is billed at version 1's charges (February ran on it).
    await ledger.at("2027-02-10T00:00:00Z")
    await record(ledger, meter, "messages", 2000, "m-2")
    preview = (await upcoming(ledger, meter))["upcomingInvoice"]
    assert [(line["kind"], line["quantity"], line["amount"]["amount"]) for line in preview["lines"]] == [
        ("PLAN", "1", "350000"), ("USAGE", "1000", "100000")]
    await ledger.check("2,000 messages", mrr=350000, events={})

    # Mar 1: the renewal moves the subscription to version 2.
    await ledger.at("2027-03-01T00:00:00Z")
    renewal = (await ledger.invoices(meter))[-1]
    assert lines(renewal) == [("PLAN", "1", 350000), ("USAGE", "1000", 100000)]
    assert figures(renewal) == billed(450000) and renewal["total"]["amount"] == "499500"
    state = await upcoming(ledger, meter)
    assert (state["planVersion"], state["pendingPlanVersion"]) == (2, None)
    await ledger.check("moved at renewal", mrr=350000, events={
        "subscription.updated": 1, "invoice.created": 1, "invoice.paid": 1})

    # Mar 5: NEW_SUBSCRIPTIONS: the subscriber keeps version 2; a new tenant pays version 3.
    await ledger.at("2027-03-05T00:00:00Z")
    newer = await ledger.mutate(UPDATE_PLAN, {"i": {"id": plan_id, "basePriceMonthly": "400000",
                                                    "applyTo": "NEW_SUBSCRIPTIONS"}})
    assert (newer["plan"]["version"], amount(newer["plan"]["basePriceAnnual"])) == (3, 4000000)
    assert newer["plan"]["charges"][0]["tiers"][0]["unitAmount"] == {"amount": "80"}
    state = await upcoming(ledger, meter)
    assert (state["planVersion"], state["pendingPlanVersion"]) == (2, None)
    assert state["upcomingInvoice"]["lines"][0]["amount"] == {"amount": "350000"}
    late = await ledger.tenant("Late Co", "late")
    await card(ledger, late)
    joined = await ledger.mutate(SUBSCRIBE, {"i": {"planId": plan_id}}, token=late.owner)
    assert figures(joined["invoice"]) == billed(400000) and joined["invoice"]["total"]["amount"] == "444000"
    assert (await upcoming(ledger, late))["planVersion"] == 3
    await ledger.check("price change for new subscriptions", mrr=750000, events={
        "plan.updated": 1, "organization.created": 1, "payment_method.added": 1, "subscription.created": 1,
        "invoice.created": 1, "invoice.paid": 1})

    # Mar 10 and Apr 1: March's usage at version 2's charges, the plan at version 2's price.
    await ledger.at("2027-03-10T00:00:00Z")
    await record(ledger, meter, "messages", 3000, "m-3")
    await ledger.at("2027-04-01T00:00:00Z")
    renewal = (await ledger.invoices(meter))[-1]
    assert lines(renewal) == [("PLAN", "1", 350000), ("USAGE", "2000", 160000)]
    assert figures(renewal) == billed(510000) and renewal["total"]["amount"] == "566100"
    await ledger.check("renewed on its version", mrr=750000, events={"invoice.created": 1, "invoice.paid": 1})
    ledger.check_event_shapes()
