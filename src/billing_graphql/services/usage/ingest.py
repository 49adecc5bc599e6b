"""Ingestion: ``record_usage`` writes a batch of up to 1,000 events in a handful of statements.

One transaction: the metric catalog and the organization's live subscription are read (two
statements); the events are inserted with ``ON CONFLICT DO NOTHING ... RETURNING`` on their
unique (organization, key), so a key seen before is a duplicate whatever runs concurrently.
The accepted events are folded per metric and billing month (``domain.usage.fold``) and each
aggregation is kept with one statement for the whole batch, never read and written back:

- UNIQUE_COUNT values go into ``usage_unique_values`` with ``ON CONFLICT DO NOTHING RETURNING``
  (its primary key is organization, metric, month and value), and each row inserted adds one to
  the month's count: a value is counted once, exactly, whatever runs concurrently;
- COUNT, SUM and those UNIQUE_COUNT increments: ``INSERT ... ON CONFLICT DO UPDATE SET value =
  value + excluded.value``;
- MAX: ``SET value = GREATEST(value, excluded.value)`` (``max(a, b)`` on SQLite);
- LATEST (GAUGEs, under their month and under ``current``): ``SET value = excluded.value WHERE
  updated_at <= excluded.updated_at``, ``updated_at`` being the timestamp of the value held, so an
  older event arriving later changes nothing.

Rows are written in one order (metric, key) in every statement, so concurrent batches wait for
each other instead of deadlocking. Limit thresholds reached write one marker each (unique per
organization, metric, month and threshold) and, for markers that are new, one outbox event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, Uuid, and_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db import mrr_history
from billing_graphql.db.engine import Database
from billing_graphql.db.types import UTCDateTime
from billing_graphql.db.models import (
    Metric,
    MetricKind,
    Organization,
    PlanLimit,
    Subscription,
    UsageCounter,
    UsageLimitEvent,
)
from billing_graphql.domain.errors import BillingError, not_found, validation
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.domain.usage import (
    GAUGE_KEY,
    MAX_COUNTER_VALUE,
    THRESHOLD_EVENTS,
    EventInput,
    MetricInfo,
    billing_month,
    check_batch,
    fold,
    month_key,
    thresholds_reached,
)
from billing_graphql.services.live.signals import note_usage
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.webhooks.objects import wire

COUNTERS = UsageCounter.__table__
MARKERS = UsageLimitEvent.__table__


@dataclass(slots=True)
class RecordResult:
    accepted: int
    duplicates: int
    errors: list[BillingError] = field(default_factory=list)


def dialect_insert(session: AsyncSession):
    """The dialect's ``insert`` (both have ``on_conflict_do_nothing`` / ``on_conflict_do_update``)."""
    return sqlite.insert if session.bind.dialect.name == "sqlite" else postgresql.insert


async def metric_catalog(session: AsyncSession) -> dict[str, MetricInfo]:
    rows = (await session.execute(select(Metric.id, Metric.code, Metric.kind, Metric.aggregation,
                                         Metric.property))).all()
    return {code: MetricInfo(id=metric_id, code=code, is_gauge=kind is MetricKind.GAUGE, aggregation=aggregation,
                             property_name=property_name)
            for metric_id, code, kind, aggregation, property_name in rows}


def live_join():
    return and_(Subscription.organization_id == Organization.id, Subscription.status != SubscriptionStatus.CANCELED)


async def record_usage(
    db: Database, *, organization_id: uuid.UUID, events: Sequence[EventInput], now: datetime
) -> RecordResult:
    """Record a batch (see the module's docstring). More than 1,000 events is a VALIDATION error
    with nothing written; an invalid event is one error naming ``events[i].field`` while the
    valid ones are recorded."""
    async with db.write() as session:
        metrics = await metric_catalog(session)
        batch = check_batch(events, metrics, now)
        found = (await session.execute(
            select(Organization.id, Subscription.period_anchor, Subscription.plan_id)
            .outerjoin(Subscription, live_join())
            .where(Organization.id == organization_id)
        )).first()
        if found is None:
            raise not_found("Organization", "organizationId")
        _, anchor, plan_id = found
        if not batch.accepted:
            return RecordResult(accepted=0, duplicates=batch.duplicates_in_batch, errors=batch.errors)
        insert = dialect_insert(session)
        new_keys = await _insert_events(session, organization_id, batch.accepted, now)
        fresh = [checked for checked in batch.accepted if checked.event.idempotency_key in new_keys]
        duplicates = batch.duplicates_in_batch + len(batch.accepted) - len(fresh)
        if fresh:
            folded = fold(fresh, anchor)
            added = dict(folded.added)
            for slot, count in (await _insert_distinct(session, organization_id, folded.distinct)).items():
                added[slot] = added.get(slot, 0) + count
            values = await _add_counters(session, insert, organization_id, added, now)
            values += await _set_maxima(session, insert, organization_id, folded.maxima, now)
            latest = await _set_latest(session, insert, organization_id, folded.latest)
            gauge_values = [row for row in latest if row[1] == GAUGE_KEY]  # limits read a gauge's current value
            if gauge_values:  # the seats MRR counts may have changed (db.mrr_history)
                mrr_history.note_gauge(session, organization_id, now)
            values += gauge_values
            if values:  # a counter changed: live usage subscribers hear of it once this commits
                note_usage(session, organization_id)
            if plan_id is not None:
                gauge_month = month_key(billing_month(anchor, now).start)
                await _limit_events(session, insert, organization_id, plan_id, values, metrics, gauge_month, now)
        return RecordResult(accepted=len(fresh), duplicates=duplicates, errors=batch.errors)


# One statement for the whole batch, its rows in one parameter (a JSON array on SQLite, arrays on
# PostgreSQL): binding 8,000 parameters one by one costs more than the insert itself.
_INSERT_EVENTS_SQLITE = text(
    "INSERT INTO usage_events (id, organization_id, metric_id, idempotency_key, quantity, occurred_at, recorded_at,"
    " properties) SELECT lower(hex(randomblob(16))), :organization_id, json_extract(value, '$[0]'),"
    " json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), :now,"
    " json_extract(value, '$[4]') FROM json_each(:rows) WHERE true"
    " ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING idempotency_key"
).bindparams(bindparam("organization_id", type_=Uuid()), bindparam("now", type_=UTCDateTime()))
_INSERT_EVENTS_POSTGRES = text(
    "INSERT INTO usage_events (id, organization_id, metric_id, idempotency_key, quantity, occurred_at, recorded_at,"
    " properties) SELECT gen_random_uuid(), :organization_id, t.metric_id, t.idempotency_key, t.quantity,"
    " t.occurred_at, :now, CAST(t.properties AS json)"
    " FROM unnest(CAST(:metric_ids AS uuid[]), CAST(:keys AS varchar[]), CAST(:quantities AS bigint[]),"
    " CAST(:occurred AS timestamptz[]), CAST(:properties AS text[]))"
    " AS t(metric_id, idempotency_key, quantity, occurred_at, properties)"
    " ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING idempotency_key"
).bindparams(bindparam("organization_id", type_=Uuid()), bindparam("now", type_=UTCDateTime()))
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DATETIME text on SQLite


async def _insert_events(session, organization_id, accepted, now) -> set[str]:
    """Insert the events, in key order (concurrent batches lock keys in one order); the keys
    inserted now come back, a key seen before does not."""
    ordered = sorted(accepted, key=lambda checked: checked.event.idempotency_key)
    if session.bind.dialect.name == "sqlite":
        rows = json.dumps([[checked.metric.id.hex, checked.event.idempotency_key, checked.event.quantity,
                            checked.event.timestamp.strftime(_SQLITE_TIME), checked.event.properties]
                           for checked in ordered])
        result = await session.execute(_INSERT_EVENTS_SQLITE, {"organization_id": organization_id, "now": now,
                                                               "rows": rows})
    else:
        dumps = json.dumps
        result = await session.execute(_INSERT_EVENTS_POSTGRES, {
            "organization_id": organization_id, "now": now,
            "metric_ids": [checked.metric.id for checked in ordered],
            "keys": [checked.event.idempotency_key for checked in ordered],
            "quantities": [checked.event.quantity for checked in ordered],
            "occurred": [checked.event.timestamp for checked in ordered],
            "properties": [None if checked.event.properties is None else dumps(checked.event.properties)
                           for checked in ordered],
        })
    return set(result.scalars().all())


_INSERT_DISTINCT_SQLITE = text(
    "INSERT INTO usage_unique_values (organization_id, metric_id, period_key, value)"
    " SELECT :organization_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')"
    " FROM json_each(:rows) WHERE true ON CONFLICT DO NOTHING RETURNING metric_id, period_key"
).bindparams(bindparam("organization_id", type_=Uuid())).columns(metric_id=Uuid(), period_key=String())
_INSERT_DISTINCT_POSTGRES = text(
    "INSERT INTO usage_unique_values (organization_id, metric_id, period_key, value)"
    " SELECT :organization_id, t.metric_id, t.period_key, t.value"
    " FROM unnest(CAST(:metric_ids AS uuid[]), CAST(:keys AS varchar[]), CAST(:values AS varchar[]))"
    " AS t(metric_id, period_key, value) ON CONFLICT DO NOTHING RETURNING metric_id, period_key"
).bindparams(bindparam("organization_id", type_=Uuid())).columns(metric_id=Uuid(), period_key=String())


async def _insert_distinct(session, organization_id, distinct) -> dict[tuple, int]:
    """Insert the UNIQUE_COUNT values not seen before in their month; how many were new per
    (metric id, month key), which is what the month's count grows by."""
    if not distinct:
        return {}
    ordered = sorted(distinct, key=lambda item: (str(item[0]), item[1], item[2]))
    if session.bind.dialect.name == "sqlite":
        rows = json.dumps([[metric_id.hex, key, value] for metric_id, key, value in ordered])
        result = await session.execute(_INSERT_DISTINCT_SQLITE, {"organization_id": organization_id, "rows": rows})
    else:
        result = await session.execute(_INSERT_DISTINCT_POSTGRES, {
            "organization_id": organization_id, "metric_ids": [item[0] for item in ordered],
            "keys": [item[1] for item in ordered], "values": [item[2] for item in ordered]})
    counts: dict[tuple, int] = {}
    for metric_id, key in result.all():
        counts[(metric_id, key)] = counts.get((metric_id, key), 0) + 1
    return counts


def _counter_rows(organization_id, values: dict, stamp) -> list[dict]:
    """Rows for ``usage_counters`` in (metric, key) order; ``stamp(folded)`` -> (updated_at, value)."""
    rows = []
    for (metric_id, period_key), value in sorted(values.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        updated_at, value = stamp(value)
        rows.append({"id": uuid.uuid4(), "organization_id": organization_id, "metric_id": metric_id,
                     "period_key": period_key, "value": value, "updated_at": updated_at})
    return rows


def _upsert(insert, rows, set_, where=None):
    statement = insert(COUNTERS).values(rows)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[COUNTERS.c.organization_id, COUNTERS.c.metric_id, COUNTERS.c.period_key],
        set_=set_(excluded), where=where(excluded) if where is not None else None,
    ).returning(COUNTERS.c.metric_id, COUNTERS.c.period_key, COUNTERS.c.value)


async def _add_counters(session, insert, organization_id, counters, now) -> list[tuple]:
    """COUNT, SUM and UNIQUE_COUNT: the increments added to the stored values."""
    if not counters:
        return []
    rows = _counter_rows(organization_id, counters, lambda value: (now, value))
    # A counter never passes MAX_COUNTER_VALUE (a signed 64-bit column): a row the sum would
    # take past it is not updated (the comparison is written so that it cannot overflow itself),
    # so it is missing from RETURNING and the whole batch is refused (the transaction rolls back).
    statement = _upsert(insert, rows,
                        lambda excluded: {"value": COUNTERS.c.value + excluded.value,
                                          "updated_at": excluded.updated_at},
                        lambda excluded: COUNTERS.c.value <= MAX_COUNTER_VALUE - excluded.value)
    values = list((await session.execute(statement)).all())
    if len(values) < len(rows):
        raise validation(f"These events would take a usage counter past its maximum ({MAX_COUNTER_VALUE}); "
                         "none was recorded.", "events")
    return values


async def _set_maxima(session, insert, organization_id, maxima, now) -> list[tuple]:
    """MAX: the stored value becomes the larger of it and the batch's maximum."""
    if not maxima:
        return []
    rows = _counter_rows(organization_id, maxima, lambda value: (now, value))
    greatest = func.max if session.bind.dialect.name == "sqlite" else func.greatest  # SQLite's max(a, b) is scalar
    statement = _upsert(insert, rows, lambda excluded: {"value": greatest(COUNTERS.c.value, excluded.value),
                                                         "updated_at": excluded.updated_at})
    return list((await session.execute(statement)).all())


async def _set_latest(session, insert, organization_id, latest) -> list[tuple]:
    """LATEST: each value kept only when its timestamp is not older than the stored one
    (``updated_at`` of a LATEST row is the time of the observation it holds)."""
    if not latest:
        return []
    rows = _counter_rows(organization_id, latest, lambda observed: observed)
    statement = _upsert(insert, rows, lambda excluded: {"value": excluded.value, "updated_at": excluded.updated_at},
                        lambda excluded: COUNTERS.c.updated_at <= excluded.updated_at)
    return list((await session.execute(statement)).all())


async def _limit_events(session, insert, organization_id, plan_id, values, metrics, gauge_month, now) -> None:
    """A marker per threshold reached; an outbox event for each marker this call created."""
    limits = dict((await session.execute(
        select(PlanLimit.metric_id, PlanLimit.limit_value).where(PlanLimit.plan_id == plan_id)
    )).all())
    codes = {metric.id: metric.code for metric in metrics.values()}
    reached: dict[tuple, tuple[int, int]] = {}
    for metric_id, period_key, value in values:
        limit = limits.get(metric_id)
        month = gauge_month if period_key == GAUGE_KEY else period_key
        for threshold in thresholds_reached(value, limit):
            reached[(str(metric_id), month, threshold)] = (value, limit)
    if not reached:
        return
    rows = [{"id": uuid.uuid4(), "organization_id": organization_id, "metric_id": uuid.UUID(metric_id),
             "period_key": month, "threshold": threshold, "created_at": now}
            for metric_id, month, threshold in sorted(reached)]
    statement = insert(MARKERS).values(rows).on_conflict_do_nothing(
        index_elements=[MARKERS.c.organization_id, MARKERS.c.metric_id, MARKERS.c.period_key, MARKERS.c.threshold]
    ).returning(MARKERS.c.metric_id, MARKERS.c.period_key, MARKERS.c.threshold)
    for metric_id, month, threshold in (await session.execute(statement)).all():
        used, limit = reached[(str(metric_id), month, threshold)]
        emit_event(session, event_type=THRESHOLD_EVENTS[threshold], organization_id=organization_id, now=now,
                   payload={"object": wire({"organization_id": organization_id, "metric": codes.get(metric_id),
                                             "month": month, "threshold": threshold, "used": used, "limit": limit},
                                            ids={"organization_id": "Organization"})})
