"""``subscription`` on the SQL tier (``graphql.subscriptions``: ``subscription_query``, the live subscription's row
with the request's clock, and the forms of ``agentCount``, ``expiredTrial``, ``addons`` and ``spendingCap``): the
same bytes as graphql-core over the resolvers on both databases, for the cases their rules tell apart. The demo's
subscription page; a trial ended, ending at the clock's instant, not ended; the ``agents`` gauge recorded or not;
per-agent and flat add-ons on MONTHLY and ANNUAL periods; a spending cap below the seats' cost, none, and one on
an older plan version (its frozen per-agent price); no live subscription (null); who names which organization.
The staff list ``subscriptions`` selects the same fields over its rows (``at_now`` on SQLite's page join)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from strawberry import relay

from billing_graphql.db.models import (
    Metric, Plan, PlanVersion, Subscription, SubscriptionAddon, TestClock, UsageCounter,
)
from billing_graphql.demo import seed_demo
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import SubscriptionStatus
from tests.factories import make_addon, make_coupon, make_plan, make_subscription
from tests.helpers import T0, make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
PAGE = (Path(__file__).parents[2] / "queries" / "spa" / "SubscriptionPage.graphql").read_text()

EVERYTHING = """query S($org: ID) { subscription(organizationId: $org) {
  __typename id status billingPeriod isTrial expiredTrial trialEndDate agentCount seats: agentCount
  plan { id name currency perAgentPrice { amount formatted } includedAgents }
  addons { __typename id addonId name slug perAgent quantity attachedAt
           unitPrice { amount currency formatted } amount { amount currency formatted } }
  coupon { code periodsRemaining }
  pendingChange { plan { name } billingPeriod }
  spendingCap { __typename currentCap { amount currency formatted } minimumRequiredCap { amount formatted }
                requireIncrease currentAgentCount }
  cap: spendingCap { requireIncrease }
} }"""

STAFF_LIST = """{ subscriptions(first: 5) { edges { cursor node {
  id expiredTrial agentCount addons { name quantity amount { amount } }
  spendingCap { currentCap { amount } minimumRequiredCap { amount } requireIncrease currentAgentCount }
} } pageInfo { hasNextPage } } }"""


async def _set(db, subscription_id: uuid.UUID, **values) -> None:
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.id == subscription_id).values(**values))


async def _agents(db, organization_id: uuid.UUID, value: int) -> None:
    """The organization's ``agents`` gauge (its ``current`` counter)."""
    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == "agents"))
        session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key="current",
                                 value=value, updated_at=NOW))


async def attach_addons(db, subscription_id: uuid.UUID) -> None:
    """Two of a per-agent add-on (Rp 1,000 a month, 10,500 a year) and three of a flat one (50,000, 480,000), the
    per-agent one first in the catalog's order."""
    per_agent = await make_addon(db, name="Zeta seats", monthly=1000, annual=10500, per_agent=True)
    flat = await make_addon(db, name="Alpha flat", monthly=50000, annual=480000)
    async with db.write() as session:
        session.add_all(SubscriptionAddon(subscription_id=subscription_id, addon_id=addon.id, quantity=quantity,
                                          created_at=NOW, updated_at=NOW)
                        for addon, quantity in ((per_agent, 2), (flat, 3)))


@pytest.fixture
async def acme(db):
    """Acme on a seats plan (Rp 5,000 an agent beyond 2) with 3 agents stored, a per-agent and a flat add-on;
    Globex with a canceled subscription only; the test clock at NOW."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    plan = await make_plan(db, name="Seats", per_agent=5000, included_agents=2)
    subscription = await make_subscription(db, keys.organization_id, plan=plan, start=NOW - timedelta(days=5))
    await _set(db, subscription.id, agent_count=3)
    await attach_addons(db, subscription.id)
    await make_subscription(db, keys.other_organization_id, status=SubscriptionStatus.CANCELED)
    return keys, subscription, plan


async def _same_answer(db, graphql_schema, token: str, organization: str | None = None,
                       query: str = EVERYTHING) -> bytes:
    """The answer, the same on both paths; without errors, answered by the SQL tier: the clock, the key and its
    one statement (the generic path: those 3 for null, else 6 or more)."""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": {"org": organization}},
                                          token, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content
    if b'"errors"' not in answers.by_graphql_core.content:
        assert answers.answered, answers.by_plan.content
        assert answers.plan_statements.count == 3, answers.plan_statements.statements
        if b'"subscription":null' not in answers.by_plan.content:
            assert answers.generic_statements.count >= 6, answers.generic_statements.statements
    return answers.by_plan.content


async def test_the_demo_subscription_page_answers_the_same_on_both_paths(db, settings, graphql_schema):
    keys = await seed_demo(db, T0, settings)
    answers = await answers_on_both_paths(db, graphql_schema, {"query": PAGE}, keys[Role.OWNER])
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert answers.answered
    assert (answers.plan_statements.count, answers.generic_statements.count) == (2, 7)  # the key, and 1 or 6
    assert answers.by_plan.content.startswith(b'{"data":{"subscription":{"id":"U3Vic2NyaXB0aW9u')


async def test_seats_add_ons_and_spending_cap_answer_the_same_on_both_paths(db, graphql_schema, acme):
    keys, subscription, plan = acme
    # No gauge: the 3 agents stored; no cap; MONTHLY. Minimum: Rp 5,000 x (3 - 2) x 1.
    own = await _same_answer(db, graphql_schema, keys.owner)
    assert b'"isTrial":false,"expiredTrial":false,"trialEndDate":null,"agentCount":3,"seats":3' in own
    # In the add-ons' order (sort order, then name): the per-agent one first, at 2 x 3 agents x Rp 1,000.
    assert (b'"name":"Zeta seats"' in own and b'"perAgent":true,"quantity":2' in own
            and b'"unitPrice":{"amount":"1000","currency":"IDR","formatted":"Rp 1,000"},'
                b'"amount":{"amount":"6000","currency":"IDR","formatted":"Rp 6,000"}' in own)
    assert own.index(b"Zeta seats") < own.index(b"Alpha flat")
    assert b'"perAgent":false,"quantity":3' in own and b'"amount":{"amount":"150000"' in own
    assert (b'"spendingCap":{"__typename":"SpendingCap","currentCap":null,'
            b'"minimumRequiredCap":{"amount":"5000","formatted":"Rp 5,000"},"requireIncrease":false,'
            b'"currentAgentCount":3},"cap":{"requireIncrease":false}' in own)

    # The gauge (5 agents) over the stored count; ANNUAL; a cap below the minimum of 5,000 x 3 x 12.
    await _agents(db, keys.organization_id, 5)
    await _set(db, subscription.id, billing_period=BillingPeriod.ANNUAL, spending_cap=100000)
    annual = await _same_answer(db, graphql_schema, keys.owner)
    assert b'"billingPeriod":"ANNUAL"' in annual and b'"agentCount":5' in annual
    assert (b'"unitPrice":{"amount":"10500","currency":"IDR","formatted":"Rp 10,500"},'
            b'"amount":{"amount":"105000","currency":"IDR","formatted":"Rp 105,000"}' in annual)  # 2 x 5 x 10,500
    assert b'"amount":{"amount":"1440000"' in annual  # flat: 3 x 480,000
    assert (b'"currentCap":{"amount":"100000","currency":"IDR","formatted":"Rp 100,000"},'
            b'"minimumRequiredCap":{"amount":"180000","formatted":"Rp 180,000"},"requireIncrease":true,'
            b'"currentAgentCount":5' in annual)

    # An older plan version: its frozen per-agent price (Rp 3,000 x 3 x 12 = 108,000), the cap still below.
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(version=2, per_agent_price=9000))
        session.add(PlanVersion(plan_id=plan.id, number=1, base_price_monthly=plan.base_price_monthly,
                                base_price_annual=plan.base_price_annual, per_agent_price=3000, created_at=NOW))
    older = await _same_answer(db, graphql_schema, keys.owner)
    assert b'"minimumRequiredCap":{"amount":"108000","formatted":"Rp 108,000"},"requireIncrease":true' in older
    assert b'"perAgentPrice":{"amount":"9000","formatted":"Rp 9,000"}' in older  # the plan shows its current price
    await _set(db, subscription.id, spending_cap=108000)  # at the minimum: no increase needed
    assert b'"requireIncrease":false' in await _same_answer(db, graphql_schema, keys.owner)
    # Fewer agents than included: no seats to pay, a minimum of 0.
    async with db.write() as session:
        await session.execute(update(UsageCounter).values(value=1))
    fewer = await _same_answer(db, graphql_schema, keys.owner)
    assert b'"minimumRequiredCap":{"amount":"0","formatted":"Rp 0"}' in fewer and b'"agentCount":1' in fewer
    # A coupon with periods left and a period change pending.
    coupon = await make_coupon(db, code="TEN", percent_off=10)
    await _set(db, subscription.id, coupon_id=coupon.id, coupon_periods_remaining=2,
               pending_billing_period=BillingPeriod.MONTHLY)
    assert (b'"coupon":{"code":"TEN","periodsRemaining":2},"pendingChange":{"plan":{"name":"Seats"},'
            b'"billingPeriod":"MONTHLY"}' in await _same_answer(db, graphql_schema, keys.owner))


async def test_a_trial_ended_or_not_answers_the_same_on_both_paths(db, graphql_schema, acme):
    keys, subscription, _ = acme
    for status, trial_end, expired in (
            (SubscriptionStatus.TRIALING, NOW - timedelta(hours=1), True),
            (SubscriptionStatus.TRIALING, NOW, True),  # at the clock's instant: ended
            (SubscriptionStatus.TRIALING, NOW + timedelta(microseconds=1), False),
            (SubscriptionStatus.PAST_DUE, NOW - timedelta(days=2), True),  # its first charge failed
            (SubscriptionStatus.ACTIVE, NOW - timedelta(days=2), False)):  # paid for
        await _set(db, subscription.id, status=status, trial_ends_at=trial_end)
        answer = await _same_answer(db, graphql_schema, keys.owner)
        assert f'"status":"{status.name}"'.encode() in answer
        assert f'"expiredTrial":{str(expired).lower()}'.encode() in answer, (status, trial_end)
    assert b'"trialEndDate":"2026-05-08T12:00:00Z"' in answer
    # The staff list reads the same fields of its rows, the clock's column beside each.
    staff = await _same_answer(db, graphql_schema, keys.super_admin, query=STAFF_LIST)
    assert b'"expiredTrial":false,"agentCount":3,"addons":[{"name":"Zeta seats","quantity":2' in staff
    await _set(db, subscription.id, status=SubscriptionStatus.TRIALING)
    staff = await _same_answer(db, graphql_schema, keys.super_admin, query=STAFF_LIST)
    assert b'"expiredTrial":true' in staff


async def test_who_names_which_organization(db, graphql_schema, acme):
    keys, _, _ = acme
    acme_id = relay.to_base64("Organization", keys.organization_id)
    globex_id = relay.to_base64("Organization", keys.other_organization_id)
    own = await _same_answer(db, graphql_schema, keys.owner)
    assert await _same_answer(db, graphql_schema, keys.super_admin, acme_id) == own
    assert await _same_answer(db, graphql_schema, keys.member, acme_id) == own
    # Globex's subscription is canceled: none live, null; a tenant naming another organization: null.
    assert await _same_answer(db, graphql_schema, keys.other_owner) == b'{"data":{"subscription":null}}'
    assert await _same_answer(db, graphql_schema, keys.owner, globex_id) == b'{"data":{"subscription":null}}'
    assert await _same_answer(db, graphql_schema, keys.super_admin, globex_id) == b'{"data":{"subscription":null}}'
    # A malformed id, and a super-admin naming none: the same errors on both paths.
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.owner, "not-an-id")
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.super_admin)
