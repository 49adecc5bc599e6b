"""Ingestion: ``record_usage`` writes a batch of up to 1,000 events in a handful of statements.

One transaction: the metric catalog and the organization's live subscription are read (two
statements); the events are inserted with ``ON CONFLICT DO NOTHING ... RETURNING`` on their
unique (organization, key), so a key seen before is a duplicate whatever runs concurrently;
the accepted COUNTER events, folded per metric and billing month, are added with one
``INSERT ... ON CONFLICT DO UPDATE SET value = value + excluded.value``; the GAUGEs, folded to
their last value by timestamp, are set with one upsert that keeps a later observation; and
limit thresholds reached write one marker each (unique per organization, metric, month and
threshold) and, for markers that are new, one outbox event. Nothing is read and then written
back, so concurrent batches never lose an update.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Uuid, and_, bindparam, select, text
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
    rows = (await session.execute(select(Metric.id, Metric.code, Metric.kind))).all()
    return {code: MetricInfo(id=metric_id, code=code, is_gauge=kind is MetricKind.GAUGE)
            for metric_id, code, kind in rows}


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
        fresh = [(event, metric) for event, metric in batch.accepted if event.idempotency_key in new_keys]
        duplicates = batch.duplicates_in_batch + len(batch.accepted) - len(fresh)
        if fresh:
            counters, gauges = fold(fresh, anchor)
            values = await _add_counters(session, insert, organization_id, counters, now)
            gauge_values = await _set_gauges(session, insert, organization_id, gauges)
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
# PostgreSQL): binding 7,000 parameters one by one costs more than the insert itself.
_INSERT_EVENTS_SQLITE = text(
    "INSERT INTO usage_events (id, organization_id, metric_id, idempotency_key, quantity, occurred_at, recorded_at)"
    " SELECT lower(hex(randomblob(16))), :organization_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), :now FROM json_each(:rows) WHERE true"
    " ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING idempotency_key"
).bindparams(bindparam("organization_id", type_=Uuid()), bindparam("now", type_=UTCDateTime()))
_INSERT_EVENTS_POSTGRES = text(
    "INSERT INTO usage_events (id, organization_id, metric_id, idempotency_key, quantity, occurred_at, recorded_at)"
    " SELECT gen_random_uuid(), :organization_id, t.metric_id, t.idempotency_key, t.quantity, t.occurred_at, :now"
    " FROM unnest(CAST(:metric_ids AS uuid[]), CAST(:keys AS varchar[]), CAST(:quantities AS bigint[]),"
    " CAST(:occurred AS timestamptz[])) AS t(metric_id, idempotency_key, quantity, occurred_at)"
    " ON CONFLICT (organization_id, idempotency_key) DO NOTHING RETURNING idempotency_key"
).bindparams(bindparam("organization_id", type_=Uuid()), bindparam("now", type_=UTCDateTime()))
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DATETIME text on SQLite


async def _insert_events(session, organization_id, accepted, now) -> set[str]:
    """Insert the events, in key order (concurrent batches lock keys in one order); the keys
    inserted now come back, a key seen before does not."""
    ordered = sorted(accepted, key=lambda item: item[0].idempotency_key)
    if session.bind.dialect.name == "sqlite":
        rows = json.dumps([[metric.id.hex, event.idempotency_key, event.quantity, event.timestamp.strftime(_SQLITE_TIME)]
                           for event, metric in ordered])
        result = await session.execute(_INSERT_EVENTS_SQLITE, {"organization_id": organization_id, "now": now,
                                                               "rows": rows})
    else:
        result = await session.execute(_INSERT_EVENTS_POSTGRES, {
            "organization_id": organization_id, "now": now,
            "metric_ids": [metric.id for _, metric in ordered],
            "keys": [event.idempotency_key for event, _ in ordered],
            "quantities": [event.quantity for event, _ in ordered],
            "occurred": [event.timestamp for event, _ in ordered],
        })
    return set(result.scalars().all())


async def _add_counters(session, insert, organization_id, counters, now) -> list[tuple]:
    if not counters:
        return []
    rows = [{"id": uuid.uuid4(), "organization_id": organization_id, "metric_id": metric_id,
             "period_key": period_key, "value": value, "updated_at": now}
            for (metric_id, period_key), value in sorted(counters.items(), key=lambda item: (str(item[0][0]),
                                                                                              item[0][1]))]
    statement = insert(COUNTERS).values(rows)
    # A counter never passes MAX_COUNTER_VALUE (a signed 64-bit column): a row the sum would
    # take past it is not updated (the comparison is written so that it cannot overflow itself),
    # so it is missing from RETURNING and the whole batch is refused (the transaction rolls back).
    statement = statement.on_conflict_do_update(
        index_elements=[COUNTERS.c.organization_id, COUNTERS.c.metric_id, COUNTERS.c.period_key],
        set_={"value": COUNTERS.c.value + statement.excluded.value, "updated_at": statement.excluded.updated_at},
        where=COUNTERS.c.value <= MAX_COUNTER_VALUE - statement.excluded.value,
    ).returning(COUNTERS.c.metric_id, COUNTERS.c.period_key, COUNTERS.c.value)
    values = list((await session.execute(statement)).all())
    if len(values) < len(rows):
        raise validation(f"These events would take a usage counter past its maximum ({MAX_COUNTER_VALUE}); "
                         "none was recorded.", "events")
    return values


async def _set_gauges(session, insert, organization_id, gauges) -> list[tuple]:
    """Each gauge's value, kept only when its timestamp is not older than the stored one
    (``updated_at`` of a gauge row is the time of the observation it holds)."""
    if not gauges:
        return []
    rows = [{"id": uuid.uuid4(), "organization_id": organization_id, "metric_id": metric_id,
             "period_key": GAUGE_KEY, "value": value, "updated_at": stamp}
            for metric_id, (stamp, value) in sorted(gauges.items(), key=lambda item: str(item[0]))]
    statement = insert(COUNTERS).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[COUNTERS.c.organization_id, COUNTERS.c.metric_id, COUNTERS.c.period_key],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        where=COUNTERS.c.updated_at <= statement.excluded.updated_at,
    ).returning(COUNTERS.c.metric_id, COUNTERS.c.period_key, COUNTERS.c.value)
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
