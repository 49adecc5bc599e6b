"""recordUsage, usage, entitlements and planLimits over HTTP: roles, validation, values, and
statement counts that do not grow with the number of metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import Metric, MetricKind, Subscription, UsageEvent
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import make_plan
from tests.helpers import count_statements, gid

RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates
  errors { code field message } } }"""
USAGE = """query($org: ID) { usage(organizationId: $org) { organizationId agentCount contactCount messagesThisMonth
  activeIntegrations usageMonth limits { metric { code } limit }
  metrics { metric { code kind } used limit remaining overage percentUsed } } }"""
ENTITLEMENTS = """query { entitlements { planSlug status features { key enabled }
  limits { metric { code } used limit exceeded } } }"""
PLAN_LIMITS = """query { planLimits { currentPlan { slug } isTrial trialEndDate expiredTrial
  cappedAmount { currentCap { amount } currentAgentCount } plans { slug includedAgents trialDays
  basePriceMonthly { amount } limits { metric { code } limit } } usage { agentCount limits { metric { code } limit } } } }"""


def event(key: str, metric: str = "messages", quantity: int = 1, at: datetime | None = None) -> dict:
    return {"metric": metric, "quantity": quantity, "timestamp": (at or datetime.now(UTC)).isoformat(),
            "idempotencyKey": key}


async def record(api, token, events, org=None) -> dict:
    variables = {"input": {"events": events, **({"organizationId": org} if org else {})}}
    return (await api.ok(RECORD, variables, token=token))["recordUsage"]


async def subscribed(db, keys, **plan_options):
    from billing_graphql.settings import Settings

    plan = await make_plan(db, monthly=0, trial_days=0, **plan_options)
    now = datetime.now(UTC) - timedelta(minutes=1)
    await subscribe(db, None, organization_id=keys.organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None,
                    idempotency_key=None, gateways=GatewayRegistry(Settings(jwt_secret="x" * 32)), now=now)
    return plan


async def test_record_and_read_usage_against_limits(api, db, keys):
    await subscribed(db, keys, limits={"messages": 100, "agents": 5, "contacts": None})
    result = await record(api, keys.owner, [event("m1", quantity=60), event("m2", quantity=70),
                                            event("a1", "agents", 4), event("i1", "integrations", 2)])
    assert result == {"accepted": 4, "duplicates": 0, "errors": []}
    assert await record(api, keys.admin, [event("m1", quantity=60)]) == {"accepted": 0, "duplicates": 1, "errors": []}
    data = (await api.ok(USAGE, token=keys.member))["usage"]
    assert data["organizationId"] == keys.organization_gid
    assert (data["agentCount"], data["contactCount"], data["messagesThisMonth"], data["activeIntegrations"]) == (
        4, 0, "130", 2)  # messagesThisMonth is a BigInt: a string
    assert data["usageMonth"] == datetime.now(UTC).strftime("%Y-%m")
    by_code = {item["metric"]["code"]: item for item in data["metrics"]}
    assert by_code["messages"] == {"metric": {"code": "messages", "kind": "COUNTER"}, "used": "130", "limit": "100",
                                   "remaining": "0", "overage": "30", "percentUsed": "130.00"}
    assert by_code["agents"]["remaining"] == "1" and by_code["agents"]["percentUsed"] == "80.00"
    assert by_code["contacts"] == {"metric": {"code": "contacts", "kind": "GAUGE"}, "used": "0", "limit": None,
                                   "remaining": None, "overage": "0", "percentUsed": None}
    assert by_code["integrations"]["limit"] is None  # not limited, but has a value
    assert set(by_code) == {"messages", "agents", "contacts", "integrations"}
    # Super-admins name the organization; tenants cannot read another's.
    other = (await api.ok(USAGE, {"org": gid("Organization", keys.other_organization_id)}, token=keys.super_admin))
    assert other["usage"]["messagesThisMonth"] == "0"
    assert (await api.ok(USAGE, {"org": gid("Organization", keys.other_organization_id)}, token=keys.owner)) == {
        "usage": None}


async def test_record_usage_roles_and_validation(api, db, keys):
    result = await api.post(RECORD, {"input": {"events": [event("x")]}}, token=keys.member)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await record(api, keys.owner, [event("x")], org=gid("Organization", keys.other_organization_id))
    assert [(e["code"], e["field"]) for e in other["errors"]] == [("NOT_FOUND", "organizationId")]
    staff = await record(api, keys.super_admin, [event("x")])
    assert [(e["code"], e["field"]) for e in staff["errors"]] == [("VALIDATION", "organizationId")]
    too_many = await record(api, keys.owner, [event(f"k{i}") for i in range(1001)])
    assert (too_many["accepted"], [(e["code"], e["field"]) for e in too_many["errors"]]) == (
        0, [("VALIDATION", "events")])
    # Control characters are refused where input enters (issue 13): the whole request, nothing written.
    nul = await api.post(RECORD, {"input": {"events": [event("ok"), event("nul\u0000")]}}, token=keys.owner)
    assert nul["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in nul["errors"]] == [
        ("VALIDATION", "input.events.idempotencyKey")]
    mixed = await record(api, keys.owner, [event("ok"), event("bad", metric="unknown"), event(" "),
                                           event("old", at=datetime.now(UTC) - timedelta(days=40))])
    assert mixed["accepted"] == 1
    assert [(e["code"], e["field"]) for e in mixed["errors"]] == [
        ("VALIDATION", "events[1].metric"), ("VALIDATION", "events[2].idempotencyKey"),
        ("VALIDATION", "events[3].timestamp")]
    wrong_type = await api.post(RECORD, {"input": {"events": [{**event("q"), "quantity": "7.0"}]}}, token=keys.owner)
    assert wrong_type.get("data") is None and wrong_type["errors"]
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 1


async def test_concurrent_record_usage_over_http_sums_exactly(api, db, keys):
    batches = [[event(f"h{b}-{i}") for i in range(100)] for b in range(5)]
    results = await asyncio.gather(*(record(api, keys.owner, batch) for batch in batches))
    assert [r["accepted"] for r in results] == [100] * 5
    data = (await api.ok(USAGE, token=keys.owner))["usage"]
    assert data["messagesThisMonth"] == "500"


async def test_entitlements_with_a_plan_the_free_tier_and_nothing(api, db, keys):
    empty = (await api.ok(ENTITLEMENTS, token=keys.member))["entitlements"]
    assert empty == {"planSlug": None, "status": None, "features": [], "limits": []}
    free = await make_plan(db, slug="free", monthly=0, limits={"messages": 10})
    data = (await api.ok(ENTITLEMENTS, token=keys.member))["entitlements"]
    assert (data["planSlug"], data["status"]) == ("free", None)
    assert data["limits"] == [{"metric": {"code": "messages"}, "used": "0", "limit": "10", "exceeded": False}]
    await subscribed(db, keys, limits={"messages": 10, "agents": None})
    await record(api, keys.owner, [event("m", quantity=11)])
    async with db.write() as session:
        subscription = await session.scalar(select(Subscription))
        subscription.status = SubscriptionStatus.UNPAID
    data = (await api.ok(ENTITLEMENTS, token=keys.member))["entitlements"]
    assert data["status"] == "UNPAID" and data["planSlug"] != free.slug
    assert data["limits"] == [{"metric": {"code": "agents"}, "used": "0", "limit": None, "exceeded": False},
                              {"metric": {"code": "messages"}, "used": "11", "limit": "10", "exceeded": True}]


async def test_plan_limits_view(api, db, keys):
    await make_plan(db, slug="other", monthly=5000, included_agents=3, trial_days=7, limits={"agents": 3})
    plan = await subscribed(db, keys, limits={"agents": 2})
    await record(api, keys.owner, [event("a", "agents", 2)])
    data = (await api.ok(PLAN_LIMITS, token=keys.owner))["planLimits"]
    assert data["currentPlan"] == {"slug": plan.slug}
    assert (data["isTrial"], data["trialEndDate"], data["expiredTrial"]) == (False, None, False)
    assert data["cappedAmount"] == {"currentCap": None, "currentAgentCount": 2}
    assert {p["slug"] for p in data["plans"]} == {"other", plan.slug}
    other = next(p for p in data["plans"] if p["slug"] == "other")
    assert (other["includedAgents"], other["trialDays"], other["limits"]) == (
        3, 7, [{"metric": {"code": "agents"}, "limit": 3}])
    assert data["usage"] == {"agentCount": 2, "limits": [{"metric": {"code": "agents"}, "limit": "2"}]}


async def test_read_statements_do_not_grow_with_metrics(api, db, keys):
    await subscribed(db, keys, limits={"messages": 100})
    await api.ok("{ clock { now } }", token=keys.owner)  # the key's first use records last_used_at
    counts = []
    for extra in (0, 30):
        async with db.write() as session:
            for _ in range(extra):
                code = f"m_{uuid.uuid4().hex[:8]}"
                session.add(Metric(code=code, name=code, kind=MetricKind.COUNTER, unit="", created_at=datetime.now(UTC)))
        await record(api, keys.owner, [event(f"e{extra}-{i}", code) for i, code in
                                       enumerate(await _codes(db))])
        for query in (USAGE, ENTITLEMENTS, PLAN_LIMITS):
            with count_statements(db) as counter:
                await api.ok(query, token=keys.owner)
            counts.append(counter.count)
    assert counts[:3] == counts[3:], counts


async def _codes(db) -> list[str]:
    async with db.read() as session:
        return list((await session.scalars(select(Metric.code))).all())


async def test_change_plan_payload_carries_plan_limits(api, db, keys):
    await subscribed(db, keys, limits={"agents": 2})
    target = await make_plan(db, monthly=0, limits={"agents": 9})
    data = await api.ok("""mutation($input: ChangePlanInput!) { changePlan(input: $input) {
        errors { code } planLimits { currentPlan { slug } usage { agentCount } } } }""",
                        {"input": {"planId": gid("Plan", target.id)}}, token=keys.owner)
    assert data["changePlan"]["errors"] == []
    assert data["changePlan"]["planLimits"]["currentPlan"] == {"slug": target.slug}
