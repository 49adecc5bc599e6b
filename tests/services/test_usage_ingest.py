"""recordUsage's service: atomic counters under concurrency, idempotent replays, gauges by
timestamp, per-event validation, limit events once per month, and the billing run's reader."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import OutboxEvent, UsageCounter, UsageEvent, UsageLimitEvent
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.usage import EventInput
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from billing_graphql.services.usage.ingest import record_usage
from billing_graphql.services.usage.reading import usage_in_period, usage_now
from tests.factories import database_state, make_plan
from tests.helpers import T0


def ev(key: str, metric: str = "messages", quantity: int = 1, at=T0) -> EventInput:
    return EventInput(metric=metric, quantity=quantity, timestamp=at, idempotency_key=key)


async def counter(db, org_id, code: str, key: str) -> int | None:
    from billing_graphql.db.models import Metric

    async with db.read() as session:
        return await session.scalar(
            select(UsageCounter.value).join(Metric, Metric.id == UsageCounter.metric_id)
            .where(UsageCounter.organization_id == org_id, Metric.code == code, UsageCounter.period_key == key)
        )


async def test_twenty_concurrent_batches_sum_exactly_and_replays_change_nothing(db, org):
    batches = [[ev(f"b{b}-e{i}", at=T0 - timedelta(seconds=i)) for i in range(500)] for b in range(20)]
    results = await asyncio.gather(*(record_usage(db, organization_id=org.id, events=batch, now=T0)
                                     for batch in batches))
    assert [r.accepted for r in results] == [500] * 20
    assert await counter(db, org.id, "messages", "2026-01") == 10_000
    before = await database_state(db)
    replays = await asyncio.gather(*(record_usage(db, organization_id=org.id, events=batch, now=T0)
                                     for batch in batches))
    assert [(r.accepted, r.duplicates) for r in replays] == [(0, 500)] * 20
    assert await database_state(db) == before


async def test_gauge_set_twice_in_one_batch_keeps_the_last_by_timestamp(db, org):
    result = await record_usage(db, organization_id=org.id, now=T0, events=[
        ev("g2", "agents", 7, T0 - timedelta(minutes=1)),
        ev("g1", "agents", 3, T0 - timedelta(minutes=5)),
    ])
    assert result.accepted == 2
    assert await counter(db, org.id, "agents", "current") == 7
    # A later batch with an older observation does not overwrite a newer one; a newer one does.
    await record_usage(db, organization_id=org.id, now=T0, events=[ev("g3", "agents", 1, T0 - timedelta(hours=1))])
    assert await counter(db, org.id, "agents", "current") == 7
    await record_usage(db, organization_id=org.id, now=T0, events=[ev("g4", "agents", 2, T0)])
    assert await counter(db, org.id, "agents", "current") == 2


async def test_invalid_events_are_refused_by_index_and_the_rest_recorded(db, org):
    result = await record_usage(db, organization_id=org.id, now=T0, events=[
        ev("ok-1", quantity=5),
        ev("bad-metric", metric="nope"),
        ev("bad-qty", quantity=-1),
        ev("old", at=T0 - timedelta(days=36)),
        ev("future", at=T0 + timedelta(minutes=6)),
        ev("nul\x00key"),
        ev("ok-1", quantity=5),  # the same key twice in one batch: a duplicate
    ])
    assert (result.accepted, result.duplicates) == (1, 1)
    assert [(e.code, e.field) for e in result.errors] == [
        (BillingErrorCode.VALIDATION, "events[1].metric"),
        (BillingErrorCode.VALIDATION, "events[2].quantity"),
        (BillingErrorCode.VALIDATION, "events[3].timestamp"),
        (BillingErrorCode.VALIDATION, "events[4].timestamp"),
        (BillingErrorCode.VALIDATION, "events[5].idempotencyKey"),
    ]
    assert await counter(db, org.id, "messages", "2026-01") == 5


async def test_more_than_1000_events_is_refused_whole(db, org):
    before = await database_state(db)
    with pytest.raises(BillingError) as caught:
        await record_usage(db, organization_id=org.id, now=T0, events=[ev(f"k{i}") for i in range(1001)])
    assert (caught.value.code, caught.value.field) == (BillingErrorCode.VALIDATION, "events")
    assert await database_state(db) == before


async def test_a_batch_is_a_handful_of_statements(db, org):
    from tests.helpers import count_statements

    events = [ev(f"s{i}", "messages" if i % 2 else "api_calls") for i in range(1000)]
    with count_statements(db) as counted:
        result = await record_usage(db, organization_id=org.id, events=events, now=T0)
    assert result.accepted == 1000
    assert counted.count <= 6, counted.statements


async def test_counters_follow_the_subscriptions_billing_month(db, org, app_settings):
    plan = await make_plan(db, monthly=0, trial_days=0, limits={"messages": 100})  # anchored at T0, no trial
    await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.ANNUAL),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(app_settings), now=T0)
    now = T0 + timedelta(days=30)  # Feb 14: still the billing month that started Jan 15
    await record_usage(db, organization_id=org.id, now=now, events=[
        ev("a", quantity=10, at=T0 + timedelta(hours=1)),
        ev("b", quantity=20, at=now),
        ev("c", quantity=40, at=T0 - timedelta(hours=1)),  # before the anchor: the month from Dec 15
    ])
    async with db.read() as session:
        assert await usage_in_period(session, org.id, "messages", T0) == 30
        assert await usage_in_period(session, org.id, "messages", T0 - timedelta(days=31)) == 40
        assert await usage_in_period(session, org.id, "messages", T0 - timedelta(days=31), T0 + timedelta(days=365)) == 70
        assert await usage_in_period(session, org.id, "agents", T0) == 0
        usage = await usage_now(session, org.id, now)
    assert usage.usage_month == "2026-01" and usage.month.start == T0 and usage.used("messages") == 30


async def test_limit_events_once_per_month_also_under_concurrency(db, org, app_settings):
    plan = await make_plan(db, trial_days=14, limits={"messages": 100, "agents": 10})
    await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(app_settings), now=T0)
    await asyncio.gather(*(record_usage(db, organization_id=org.id, now=T0,
                                        events=[ev(f"m{b}-{i}", quantity=3) for i in range(10)]) for b in range(6)))
    await record_usage(db, organization_id=org.id, now=T0, events=[ev("agents", "agents", 9)])
    await record_usage(db, organization_id=org.id, now=T0, events=[ev("more", quantity=50)])
    async with db.read() as session:
        events = (await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload).where(OutboxEvent.event_type.like("usage.%"))
            .order_by(OutboxEvent.event_type)
        )).all()
        markers = await session.scalar(select(func.count()).select_from(UsageLimitEvent))
    assert sorted((kind, data["object"]["metric"], data["object"]["threshold"]) for kind, data in events) == [
        ("usage.limit_approaching", "agents", 80),
        ("usage.limit_approaching", "messages", 80),
        ("usage.limit_reached", "messages", 100),
    ]
    assert markers == 3
    # The next billing month starts over.
    later = T0 + timedelta(days=32)
    await record_usage(db, organization_id=org.id, now=later, events=[ev("feb", quantity=100, at=later)])
    async with db.read() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxEvent)
                                     .where(OutboxEvent.event_type.like("usage.%")))
    assert count == 5


async def test_unknown_organization_is_not_found_and_writes_nothing(db, org):
    import uuid

    with pytest.raises(BillingError) as caught:
        await record_usage(db, organization_id=uuid.uuid4(), now=T0, events=[ev("x")])
    assert caught.value.code is BillingErrorCode.NOT_FOUND
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 0
