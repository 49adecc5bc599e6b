"""``entitlements`` and ``usage`` on the SQL tier (``graphql.usage.types``: their rows and the forms of their
features, limits and metrics): the same bytes as graphql-core over the services' ``entitlements`` and ``usage_now``
on both databases, for the cases their rules tell apart. A live subscription anchored mid-month (the billing month in force is not the calendar month),
COUNTER and GAUGE metrics with values in other months too, a limit exceeded, one unlimited; an organization
without a subscription on the free tier (calendar months); and, with no free tier, the generic path's answer
(every known feature off). ``percentUsed``'s rounding (halves up, a limit of 0, a value past 2^53)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from strawberry import relay

from billing_graphql.db.models import Metric, Plan, PlanFeature, Subscription, TestClock, UsageCounter
from billing_graphql.domain.status import SubscriptionStatus
from tests.factories import make_organization, make_plan, make_subscription
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
ANCHOR = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)  # the billing month in force at NOW: 20 April - 20 May

EVERYTHING = """query E($org: ID) { entitlements(organizationId: $org) {
  __typename planSlug status s2: status
  features { key enabled __typename }
  limits { metric { code kind name } used limit exceeded again: used }
  l2: limits { exceeded }
} }"""


async def _counter(db, organization_id: uuid.UUID, code: str, key: str, value: int) -> None:
    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == code))
        session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key=key, value=value,
                                 updated_at=NOW))


async def _features(db, plan: Plan, **flags: bool) -> None:
    async with db.write() as session:
        session.add_all(PlanFeature(plan_id=plan.id, key=key, enabled=enabled) for key, enabled in flags.items())


@pytest.fixture
async def organizations(db):
    """Acme on a plan of its own anchored mid-month, with usage; Globex with none; the test clock at NOW."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    plan = await make_plan(db, slug="team", limits={"messages": 100, "agents": 3, "contacts": None, "channels": 8,
                                                    "integrations": 800, "ai_agents": 0, "api_calls": 3})
    await _features(db, plan, sso=True, api=False)
    await make_subscription(db, keys.organization_id, plan=plan, start=ANCHOR)
    for code, key, value in (("messages", "2026-04", 150), ("messages", "2026-05", 7), ("agents", "current", 2),
                             ("agents", "2026-04", 99), ("contacts", "current", 12),
                             ("contacts", "2026-04", 5), ("channels", "current", 1), ("integrations", "current", 1),
                             ("api_calls", "2026-04", 9007199254740991), ("api_calls", "2026-05", 1)):
        await _counter(db, keys.organization_id, code, key, value)
    for code, key, value in (("messages", "2026-05", 4), ("messages", "2026-04", 1000)):
        await _counter(db, keys.other_organization_id, code, key, value)
    return keys


async def _same_answer(db, graphql_schema, token: str, organization: str | None, sql_tier: bool,
                       query: str = EVERYTHING) -> bytes:
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": {"org": organization}},
                                          token, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content
    if b'"errors"' not in answers.by_graphql_core.content:
        assert answers.answered == sql_tier, answers.by_plan.content  # else handed to graphql-core
        if sql_tier:  # else one statement more: the first read, before the generic path answers
            assert answers.plan_statements.count <= answers.generic_statements.count
    return answers.by_plan.content


async def test_a_live_subscription_and_the_free_tier_answer_the_same_on_both_paths(db, graphql_schema, organizations):
    keys = organizations
    free = await make_plan(db, slug="free", monthly=0, sort_order=0, limits={"messages": 10})
    await _features(db, free, sso=False)
    acme = relay.to_base64("Organization", keys.organization_id)
    globex = relay.to_base64("Organization", keys.other_organization_id)

    own = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True)
    answers = await answers_on_both_paths(db, graphql_schema, {"query": EVERYTHING}, keys.owner, test_clock=True)
    assert (answers.plan_statements.count, answers.generic_statements.count) == (4, 8)  # the clock, the key, and 2 or 6
    assert own.startswith(b'{"data":{"entitlements":{"__typename":"Entitlements","planSlug":"team","status":"ACTIVE"')
    # April's 150 messages (the billing month in force), over the limit; the agents gauge's current value.
    assert b'{"metric":{"code":"messages","kind":"COUNTER","name":"Messages"},"used":"150","limit":"100","exceeded":true' in own
    assert b'"code":"agents","kind":"GAUGE","name":"Agents"},"used":"2","limit":"3","exceeded":false' in own
    assert b'"code":"contacts","kind":"GAUGE","name":"Contacts"},"used":"12","limit":null,"exceeded":false' in own
    assert await _same_answer(db, graphql_schema, keys.super_admin, acme, sql_tier=True) == own
    # Globex has no subscription: the free tier, over the calendar month (May's 4 messages).
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=True)
    assert b'"planSlug":"free","status":null,"s2":null,"features":[{"key":"sso","enabled":false' in other
    assert b'"code":"messages","kind":"COUNTER","name":"Messages"},"used":"4","limit":"10"' in other
    # Out of reach: null; an organization of no row: null; a malformed id and a super-admin naming none: errors.
    assert b'"entitlements":null' in await _same_answer(db, graphql_schema, keys.owner, globex, sql_tier=True)
    assert b'"entitlements":null' in await _same_answer(
        db, graphql_schema, keys.super_admin, relay.to_base64("Organization", uuid.UUID(int=7)), sql_tier=True)
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.super_admin, "not-an-id", sql_tier=True)
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.super_admin, None, sql_tier=True)


async def test_without_a_plan_or_a_free_tier_the_generic_path_answers(db, graphql_schema, organizations):
    keys = organizations
    async with db.write() as session:  # a plan priced 0 that is not active is no free tier
        await session.execute(update(Plan).values(is_active=False).where(Plan.slug != "team"))
    await make_plan(db, slug="paused-free", monthly=0, active=False)
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=False)
    assert other.startswith(b'{"data":{"entitlements":{"__typename":"Entitlements","planSlug":null,"status":null,'
                            b'"s2":null,"features":[{"key":"api","enabled":false')


USAGE = """query U($org: ID) { usage(organizationId: $org) {
  __typename organizationId agentCount contactCount messagesThisMonth activeIntegrations usageMonth periodStart periodEnd
  limits { metric { code } limit }
  metrics { metric { code kind } used limit remaining overage percentUsed p: percentUsed }
} }"""

TYPENAME = "query U($org: ID) { usage(organizationId: $org) { __typename } }"


async def test_usage_answers_the_same_on_both_paths(db, graphql_schema, organizations):
    keys = organizations
    own = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=USAGE)
    # The billing month in force (April 20 - May 20): April's counters, the gauges' current values.
    assert (b'"agentCount":2,"contactCount":12,"messagesThisMonth":"150","activeIntegrations":1,"usageMonth":"2026-04",'
            b'"periodStart":"2026-04-20T15:00:00Z","periodEnd":"2026-05-20T15:00:00Z"') in own
    for metric in (b'"code":"agents","kind":"GAUGE"},"used":"2","limit":"3","remaining":"1","overage":"0","percentUsed":"66.67"',
                   b'"code":"ai_agents","kind":"GAUGE"},"used":"0","limit":"0","remaining":"0","overage":"0","percentUsed":"0.00"',
                   b'"code":"api_calls","kind":"COUNTER"},"used":"9007199254740991","limit":"3","remaining":"0",'
                   b'"overage":"9007199254740988","percentUsed":"300239975158033033.33"',
                   b'"code":"channels","kind":"GAUGE"},"used":"1","limit":"8","remaining":"7","overage":"0","percentUsed":"12.50"',
                   b'"code":"contacts","kind":"GAUGE"},"used":"12","limit":null,"remaining":null,"overage":"0","percentUsed":null',
                   b'"code":"integrations","kind":"GAUGE"},"used":"1","limit":"800","remaining":"799","overage":"0",'
                   b'"percentUsed":"0.13"',
                   b'"code":"messages","kind":"COUNTER"},"used":"150","limit":"100","remaining":"0","overage":"50",'
                   b'"percentUsed":"150.00"'):
        assert metric in own, metric
    # Without a subscription: the calendar month, no limits, only the metrics with a value, no seats.
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=True, query=USAGE)
    assert b'"agentCount":0,"contactCount":0,"messagesThisMonth":"4","activeIntegrations":0,"usageMonth":"2026-05"' in other
    assert b'"limits":[],"metrics":[{"metric":{"code":"messages","kind":"COUNTER"},"used":"4","limit":null' in other
    # A subscription without the agents gauge: its stored agent count.
    initech = await make_organization(db, "Initech")
    await make_subscription(db, initech.id, start=ANCHOR)
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.organization_id == initech.id)
                              .values(agent_count=4))
    stored = await _same_answer(db, graphql_schema, keys.super_admin, relay.to_base64("Organization", initech.id),
                                sql_tier=True, query=USAGE)
    assert b'"agentCount":4,' in stored
    assert b'"usage":null' in await _same_answer(db, graphql_schema, keys.owner, relay.to_base64(
        "Organization", keys.other_organization_id), sql_tier=True, query=USAGE)
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.super_admin, None, sql_tier=True, query=USAGE)
    # Only __typename: whether there is a row (SQLite has no SELECT of no columns).
    assert await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=TYPENAME) == (
        b'{"data":{"usage":{"__typename":"Usage"}}}')


PLAN_LIMITS = """query P($org: ID) { planLimits(organizationId: $org) {
  __typename currentPlan { slug name } isTrial trialEndDate expiredTrial t: isTrial
  cappedAmount { currentCap { amount formatted } minimumRequiredCap { amount currency } requireIncrease currentAgentCount }
  plans { slug name includedAgents trialDays basePriceMonthly { amount currency formatted } limits { metric { code } limit } }
  usage { __typename agentCount limits { metric { code } limit } }
} }"""


async def test_plan_limits_answer_the_same_on_both_paths(db, graphql_schema, organizations):
    keys = organizations
    await make_plan(db, slug="dollar", currency="USD")  # another currency: not offered
    await make_plan(db, slug="retired", active=False)
    own = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=PLAN_LIMITS)
    assert b'"currentPlan":{"slug":"team"' in own and b'"isTrial":false,"trialEndDate":null,"expiredTrial":false' in own
    assert b'"cappedAmount":{"currentCap":null,' in own and b'"currentAgentCount":2}' in own
    assert b'"slug":"dollar"' not in own and b'"slug":"retired"' not in own
    # Each limited metric's value now as its limit: April's messages, the gauges' current values.
    assert (b'"usage":{"__typename":"PlanLimitsUsage","agentCount":2,"limits":[{"metric":{"code":"agents"},"limit":"2"},'
            b'{"metric":{"code":"ai_agents"},"limit":"0"},{"metric":{"code":"api_calls"},"limit":"9007199254740991"}') in own
    # Trials: one that ended (TRIALING past its end), one running; without a subscription, no current plan.
    # and spending caps: below what the seats cost (a per-agent price, agents beyond the included one), above.
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.slug == "team").values(per_agent_price=50000, included_agents=1))
    for status, ends, expired, cap, low in ((SubscriptionStatus.TRIALING, NOW, b"true", 10000, b"true"),
                                            (SubscriptionStatus.TRIALING, NOW + timedelta(seconds=1), b"false", None,
                                             b"false"),
                                            (SubscriptionStatus.PAST_DUE, NOW - timedelta(days=1), b"true", 50000,
                                             b"false"),
                                            (SubscriptionStatus.ACTIVE, NOW - timedelta(days=1), b"false", 49999,
                                             b"true")):
        async with db.write() as session:
            await session.execute(update(Subscription).where(Subscription.organization_id == keys.organization_id)
                                  .values(status=status, trial_ends_at=ends, spending_cap=cap))
        answer = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=PLAN_LIMITS)
        assert b'"expiredTrial":' + expired in answer, (status, ends, answer)
        assert b'"minimumRequiredCap":{"amount":"50000","currency":"IDR"},"requireIncrease":' + low in answer, answer
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=True, query=PLAN_LIMITS)
    assert b'"currentPlan":null,"isTrial":false,"trialEndDate":null,"expiredTrial":false,"t":false,"cappedAmount":null' in other
