"""Aggregates kept by ingestion and read by ``reading.period_quantities``: per billing month and
over a period of several, in one or two statements; exact under concurrent batches."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from billing_graphql.db.models import Metric, UsageCounter, UsageUniqueValue
from billing_graphql.domain.aggregation import Aggregation
from billing_graphql.domain.periods import Period
from billing_graphql.domain.usage import EventInput
from billing_graphql.services.catalog.metrics import create_metric
from billing_graphql.services.usage.ingest import record_usage
from billing_graphql.services.usage.reading import period_quantities
from tests.helpers import T0, count_statements

DEC = datetime(2025, 12, 20, 10, tzinfo=UTC)
JAN = datetime(2026, 1, 10, 10, tzinfo=UTC)


@pytest.fixture
async def metrics(db) -> dict[str, object]:
    made = {
        "users": await create_metric(db, None, code="users", name="Users", aggregation=Aggregation.UNIQUE_COUNT,
                                     property_name="user", now=T0),
        "peak": await create_metric(db, None, code="peak", name="Peak", aggregation=Aggregation.MAX, now=T0),
        "calls": await create_metric(db, None, code="calls", name="Calls", aggregation=Aggregation.COUNT, now=T0),
        "bytes": await create_metric(db, None, code="bytes", name="Bytes", aggregation=Aggregation.SUM,
                                     property_name="bytes", now=T0),
    }
    ids = {code: metric.id for code, metric in made.items()}
    async with db.read() as session:
        for code in ("agents", "messages"):
            ids[code] = await session.scalar(select(Metric.id).where(Metric.code == code))
    return ids


def ev(key, metric, quantity=1, at=JAN, **properties) -> EventInput:
    return EventInput(metric, quantity, at, key, properties or None)


async def test_period_quantities_per_aggregation_month_and_period(db, org, metrics):
    december = [ev("d1", "users", at=DEC, user="ann"), ev("d2", "users", at=DEC, user="bob"),
                ev("d3", "peak", 5, at=DEC), ev("d4", "calls", 9, at=DEC), ev("d5", "calls", at=DEC),
                ev("d6", "bytes", at=DEC, bytes=10), ev("d7", "agents", 3, at=DEC), ev("d8", "messages", 4, at=DEC)]
    january = [ev("j1", "users", user="bob"), ev("j2", "users", user="cy"), ev("j3", "peak", 3), ev("j4", "calls"),
               ev("j5", "bytes", bytes=5), ev("j6", "messages", 6)]
    for batch in (december, january):
        assert (await record_usage(db, organization_id=org.id, events=batch, now=T0)).accepted == len(batch)
    codes = ["users", "peak", "calls", "bytes", "agents", "messages"]
    ids = [metrics[code] for code in codes]

    async def read(period: Period, statements: int) -> list[int]:
        with count_statements(db) as counted:
            async with db.read() as session:
                found = await period_quantities(session, org.id, ids, period)
        assert counted.count <= statements, counted.statements
        return [found[metrics[code]] for code in codes]

    dec = Period(datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    jan = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    both = Period(dec.start, jan.end)
    annual = Period(dec.start, datetime(2026, 12, 1, tzinfo=UTC))
    assert await read(dec, 1) == [2, 5, 2, 10, 3, 4]
    assert await read(jan, 1) == [2, 3, 1, 5, 3, 6]  # the gauge carries over a month without events
    # Several months: distinct users across them (ann, bob, cy), not the sum of the months' counts.
    assert await read(both, 2) == [3, 5, 3, 15, 3, 10]
    assert await read(annual, 2) == [3, 5, 3, 15, 3, 10]
    assert await read(Period(jan.start, jan.start + timedelta(days=14)), 0) == [0] * 6  # a short trial: no month
    await record_usage(db, organization_id=org.id, events=[ev("j7", "agents", 8)], now=T0)
    assert (await read(dec, 1))[4] == 3 and (await read(jan, 1))[4] == 8
    # Rows from before months were kept for gauges: the current value, if observed before the period's end.
    async with db.write() as session:
        await session.execute(delete(UsageCounter).where(UsageCounter.metric_id == metrics["agents"],
                                                         UsageCounter.period_key != "current"))
    assert (await read(jan, 1))[4] == 8 and (await read(dec, 1))[4] == 0
    async with db.read() as session:
        assert await period_quantities(session, org.id, [], jan) == {}


async def test_concurrent_batches_keep_exact_aggregates(db, org, metrics):
    """Twelve batches at once, overlapping in distinct values and gauge timestamps: every aggregate
    ends exactly where recording them one by one would (PostgreSQL: real concurrency)."""
    rng = random.Random(20)
    batches, users, peaks, gauge = [], set(), [], []
    for number in range(12):
        batch = []
        for index in range(200):
            at = T0 - timedelta(seconds=rng.randrange(0, 3000))
            kind = index % 4
            if kind == 0:
                user = f"u{rng.randrange(150)}"
                users.add(user)
                batch.append(ev(f"{number}-{index}", "users", at=at, user=user))
            elif kind == 1:
                peak = rng.randrange(10**6)
                peaks.append(peak)
                batch.append(ev(f"{number}-{index}", "peak", peak, at=at))
            elif kind == 2:
                batch.append(ev(f"{number}-{index}", "calls", at=at))
            else:
                at = T0 - timedelta(seconds=number * 200 + index)  # distinct timestamps
                gauge.append((at, rng.randrange(100)))
                batch.append(ev(f"{number}-{index}", "agents", gauge[-1][1], at=at))
        batches.append(batch)
    results = await asyncio.gather(*(record_usage(db, organization_id=org.id, events=batch, now=T0)
                                     for batch in batches))
    assert [result.accepted for result in results] == [200] * 12
    jan = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    async with db.read() as session:
        found = await period_quantities(session, org.id, metrics.values(), jan)
        current = await session.scalar(select(UsageCounter.value).where(
            UsageCounter.metric_id == metrics["agents"], UsageCounter.period_key == "current"))
        rows = await session.scalar(select(func.count()).select_from(UsageUniqueValue))
    assert found[metrics["users"]] == len(users) == rows
    assert found[metrics["peak"]] == max(peaks)
    assert found[metrics["calls"]] == 600
    assert found[metrics["agents"]] == current == max(gauge)[1]
    # Replaying every batch at once changes nothing.
    replays = await asyncio.gather(*(record_usage(db, organization_id=org.id, events=batch, now=T0)
                                     for batch in batches))
    assert [result.duplicates for result in replays] == [200] * 12
    async with db.read() as session:
        assert await period_quantities(session, org.id, metrics.values(), jan) == found


async def test_a_batch_of_every_aggregation_is_a_fixed_handful_of_statements(db, org, metrics):
    """Statements per batch do not grow with its events: two reads, the events, the distinct values,
    one upsert per aggregation present (add, max, latest)."""
    from tests.helpers import count_statements as counting

    def batch(tag: str, size: int) -> list[EventInput]:
        return [ev(f"{tag}{i}", ("users", "peak", "calls", "bytes", "agents", "messages")[i % 6], i % 7, T0,
                   **({"user": f"u{i}"} if i % 6 == 0 else {"bytes": i} if i % 6 == 3 else {}))
                for i in range(size)]

    counted_sizes = []
    for tag, size in (("a", 12), ("b", 600)):
        with counting(db) as counted:
            assert (await record_usage(db, organization_id=org.id, events=batch(tag, size), now=T0)).accepted == size
        counted_sizes.append(counted.count)
    assert counted_sizes[0] == counted_sizes[1] <= 8, counted_sizes


async def test_the_database_refuses_what_the_rules_refuse(db, org, metrics):
    """The constraints behind the rules: kind GAUGE is exactly LATEST, UNIQUE_COUNT has a property and
    COUNT none, and a distinct value is stored once per organization, metric and month."""
    from sqlalchemy.exc import IntegrityError

    from billing_graphql.domain.aggregation import MetricKind

    for kind, aggregation, property_name in [(MetricKind.GAUGE, Aggregation.SUM, None),
                                             (MetricKind.COUNTER, Aggregation.LATEST, None),
                                             (MetricKind.COUNTER, Aggregation.UNIQUE_COUNT, None),
                                             (MetricKind.COUNTER, Aggregation.COUNT, "user")]:
        with pytest.raises(IntegrityError):
            async with db.write() as session:
                session.add(Metric(code=f"bad_{aggregation.value.lower()}", name="Bad", kind=kind, unit="",
                                   aggregation=aggregation, property=property_name, created_at=T0))
    row = {"organization_id": org.id, "metric_id": metrics["users"], "period_key": "2026-01", "value": "ann"}
    async with db.write() as session:
        session.add(UsageUniqueValue(**row))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(UsageUniqueValue(**row))
