"""Usage amounts so far (usage, entitlements, partner snapshots) and usage on the change invoice of an
immediate plan change, at the old plan's charges, the counters then starting again for the new plan.

Meter: Rp 100,000 a month; messages limited to 100, STANDARD Rp 10 above 100 included; api_calls
PACKAGE Rp 500 per started 1,000. Bigger: Rp 200,000; messages STANDARD Rp 5 above 1,000 included.
- Jan 10 2026: subscribed to Meter. Jan 15: 400 messages (300 x 10 = 3,000), 1,500 API calls
  (2 packages = 1,000).
- Jan 20: changePlan to Bigger now: the change invoice bills the usage so far at Meter's charges.
- Jan 25: 1,500 messages more: 1,900 counted, 400 billed already: 1,500 for Bigger, 500 above its
  1,000 included: 2,500.
- Feb 10: the renewal bills Bigger (200,000) and 2,500 of usage.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_graphql.db.models import TestClock
from tests.factories import make_payment_method
from tests.helpers import test_settings

ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted errors { code field } } }"""
CREATE = """mutation($i: CreatePlanInput!) { createPlan(input: $i) { plan { id } errors { code field } } }"""
SUBSCRIBE = """mutation($i: SubscribeInput!) { subscribe(input: $i) { errors { code message } } }"""
CHANGE = """mutation($i: ChangePlanInput!) { changePlan(input: $i) { errors { code message }
  invoice { subtotal { amount } lines { kind description quantity amount { amount } } } } }"""
AMOUNTS = """query($org: ID!) {
  usage(organizationId: $org) { metrics { metric { code } used amount { amount currency formatted } } }
  entitlements(organizationId: $org) { limits { metric { code } used amount { amount } } }
  usageSnapshots(organizationIds: [$org]) { edges { node { metrics { metric { code } used amount { amount } } } } } }"""
INVOICES = """{ invoices(first: 10) { edges { node { billingReason periodStart subtotal { amount }
  lines { kind description quantity amount { amount } } } } } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


def event(key: str, metric: str, quantity: int, at: str) -> dict:
    return {"metric": metric, "quantity": quantity, "timestamp": at, "idempotencyKey": key}


async def test_amounts_so_far_and_usage_billed_on_a_plan_change(api, db, keys):
    async with db.write() as session:
        session.add(TestClock(id=1, now=datetime(2026, 1, 10, tzinfo=UTC)))
    meter = (await api.ok(CREATE, {"i": {
        "name": "Meter", "slug": "meter", "basePriceMonthly": "100000", "trialDays": 0,
        "limits": [{"metric": "messages", "limit": 100}],
        "charges": [{"metric": "messages", "model": "STANDARD", "includedUnits": 100, "unitAmount": "10"},
                    {"metric": "api_calls", "model": "PACKAGE", "unitAmount": "500", "packageSize": 1000}]}},
        token=keys.super_admin))["createPlan"]["plan"]["id"]
    bigger = (await api.ok(CREATE, {"i": {
        "name": "Bigger", "slug": "bigger", "basePriceMonthly": "200000", "trialDays": 0,
        "overageMessagePrice": "5", "limits": [{"metric": "messages", "limit": 1000}]}},
        token=keys.super_admin))["createPlan"]["plan"]["id"]
    await make_payment_method(db, keys.organization_id)
    assert (await api.ok(SUBSCRIBE, {"i": {"planId": meter}}, token=keys.owner))["subscribe"]["errors"] == []

    await api.ok(ADVANCE, {"to": "2026-01-15T00:00:00Z"}, token=keys.super_admin)
    recorded = await api.ok(RECORD, {"input": {"events": [
        event("m-1", "messages", 400, "2026-01-15T00:00:00Z"), event("a-1", "api_calls", 1500, "2026-01-15T00:00:00Z")]}},
        token=keys.owner)
    assert recorded["recordUsage"] == {"accepted": 2, "errors": []}
    data = await api.ok(AMOUNTS, {"org": keys.organization_gid}, token=keys.super_admin)
    usage = {m["metric"]["code"]: (m["used"], m["amount"]) for m in data["usage"]["metrics"]}
    assert usage["messages"] == ("400", {"amount": "3000", "currency": "IDR", "formatted": "Rp 3,000"})
    assert usage["api_calls"][1]["amount"] == "1000"
    entitlements = {m["metric"]["code"]: m["amount"] for m in data["entitlements"]["limits"]}
    assert entitlements == {"messages": {"amount": "3000"}}  # only limited metrics are entitlements
    (edge,) = data["usageSnapshots"]["edges"]
    snapshot = {m["metric"]["code"]: (m["used"], m["amount"]) for m in edge["node"]["metrics"]}
    assert snapshot["messages"] == ("400", {"amount": "3000"}) and snapshot["api_calls"][1] == {"amount": "1000"}

    # Jan 20: the change invoice bills the usage so far at Meter's charges.
    await api.ok(ADVANCE, {"to": "2026-01-20T00:00:00Z"}, token=keys.super_admin)
    changed = (await api.ok(CHANGE, {"i": {"planId": bigger}}, token=keys.owner))["changePlan"]
    assert changed["errors"] == []
    lines = changed["invoice"]["lines"]
    assert [(line["kind"], line["quantity"], line["amount"]["amount"]) for line in lines[2:]] == [
        ("USAGE", "300", "3000"), ("USAGE", "1500", "1000")]
    assert [line["kind"] for line in lines[:2]] == ["PRORATION_CREDIT", "PRORATION_CHARGE"]
    assert int(changed["invoice"]["subtotal"]["amount"]) == sum(int(line["amount"]["amount"]) for line in lines)
    data = await api.ok(AMOUNTS, {"org": keys.organization_gid}, token=keys.super_admin)
    usage = {m["metric"]["code"]: (m["used"], m["amount"]) for m in data["usage"]["metrics"]}
    assert usage["messages"] == ("400", {"amount": "0", "currency": "IDR", "formatted": "Rp 0"})  # starts again
    assert usage["api_calls"][1] is None  # Bigger has no charge on API calls

    # Jan 25: 1,500 more messages, for Bigger: 500 above its 1,000 included.
    await api.ok(ADVANCE, {"to": "2026-01-25T00:00:00Z"}, token=keys.super_admin)
    await api.ok(RECORD, {"input": {"events": [event("m-2", "messages", 1500, "2026-01-25T00:00:00Z")]}},
                 token=keys.owner)
    data = await api.ok(AMOUNTS, {"org": keys.organization_gid}, token=keys.super_admin)
    assert {m["metric"]["code"]: m["amount"] for m in data["usage"]["metrics"]}["messages"]["amount"] == "2500"

    await api.ok(ADVANCE, {"to": "2026-02-10T01:00:00Z"}, token=keys.super_admin)
    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    renewal = next(node for node in invoices if node["periodStart"] == "2026-02-10T00:00:00Z")
    assert [(line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
            for line in renewal["lines"]] == [
        ("PLAN", "Bigger plan (monthly)", "1", "200000"),
        ("USAGE", "Messages above the 1,000 included per month", "500", "2500")]


async def test_a_peak_is_not_billed_on_the_change_invoice_but_once_at_renewal(api, db, keys):
    """Only SUMMED metrics (COUNT, SUM) split at a plan change (``services.billing.usage_charges``):
    the change invoice bills the messages so far and they start again; the peak (MAX) of the period
    is not billed on it, and the renewal bills the whole period's peak once, at the new plan's charge.

    Meter: messages STANDARD Rp 10 each, peak_agents STANDARD Rp 1,000 each. Bigger: peak_agents
    Rp 2,000 each. Jan 15: 40 messages, a peak of 5 agents. Jan 20: changePlan to Bigger: the
    change invoice bills 40 x 10 = 400 and no peak. Jan 25: a peak of 3. Feb 10: the renewal bills
    the period's peak, 5 x 2,000 = 10,000 (not 3: the peak does not start again).
    """
    async with db.write() as session:
        session.add(TestClock(id=1, now=datetime(2026, 1, 10, tzinfo=UTC)))
    created = await api.ok("""mutation($input: CreateMetricInput!) { createMetric(input: $input) { errors { code } } }""",
                           {"input": {"code": "peak_agents", "name": "Peak agents", "aggregation": "MAX"}},
                           token=keys.super_admin)
    assert created["createMetric"]["errors"] == []
    meter = (await api.ok(CREATE, {"i": {
        "name": "Meter", "slug": "meter", "basePriceMonthly": "100000", "trialDays": 0,
        "charges": [{"metric": "messages", "model": "STANDARD", "unitAmount": "10"},
                    {"metric": "peak_agents", "model": "STANDARD", "unitAmount": "1000"}]}},
        token=keys.super_admin))["createPlan"]["plan"]["id"]
    bigger = (await api.ok(CREATE, {"i": {
        "name": "Bigger", "slug": "bigger", "basePriceMonthly": "200000", "trialDays": 0,
        "charges": [{"metric": "peak_agents", "model": "STANDARD", "unitAmount": "2000"}]}},
        token=keys.super_admin))["createPlan"]["plan"]["id"]
    await make_payment_method(db, keys.organization_id)
    assert (await api.ok(SUBSCRIBE, {"i": {"planId": meter}}, token=keys.owner))["subscribe"]["errors"] == []
    await api.ok(ADVANCE, {"to": "2026-01-15T00:00:00Z"}, token=keys.super_admin)
    recorded = await api.ok(RECORD, {"input": {"events": [
        event("m-1", "messages", 40, "2026-01-15T00:00:00Z"), event("p-1", "peak_agents", 5, "2026-01-15T00:00:00Z")]}},
        token=keys.owner)
    assert recorded["recordUsage"] == {"accepted": 2, "errors": []}

    await api.ok(ADVANCE, {"to": "2026-01-20T00:00:00Z"}, token=keys.super_admin)
    changed = (await api.ok(CHANGE, {"i": {"planId": bigger}}, token=keys.owner))["changePlan"]
    assert changed["errors"] == []
    assert [(line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
            for line in changed["invoice"]["lines"] if line["kind"] == "USAGE"] == [("USAGE", "Messages", "40", "400")]
    data = await api.ok(AMOUNTS, {"org": keys.organization_gid}, token=keys.super_admin)
    usage = {m["metric"]["code"]: (m["used"], m["amount"]) for m in data["usage"]["metrics"]}
    assert usage["peak_agents"][1]["amount"] == "10000"  # the peak so far at Bigger's charge, not restarted

    await api.ok(ADVANCE, {"to": "2026-01-25T00:00:00Z"}, token=keys.super_admin)
    await api.ok(RECORD, {"input": {"events": [event("p-2", "peak_agents", 3, "2026-01-25T00:00:00Z")]}},
                 token=keys.owner)
    await api.ok(ADVANCE, {"to": "2026-02-10T01:00:00Z"}, token=keys.super_admin)
    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    renewal = next(node for node in invoices if node["periodStart"] == "2026-02-10T00:00:00Z")
    assert [(line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
            for line in renewal["lines"]] == [
        ("PLAN", "Bigger plan (monthly)", "1", "200000"),
        ("USAGE", "Peak agents", "5", "10000")]
