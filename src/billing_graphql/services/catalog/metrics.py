"""The metric catalog, and what the plan, add-on and coupon services share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Metric
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.aggregation import Aggregation, MetricKind, metric_aggregation
from billing_graphql.domain.catalog import check_metric_code, check_unit, clean_name
from billing_graphql.domain.errors import validation
from billing_graphql.services.platform.audit import record_audit, snapshot
from billing_graphql.services.platform.writes import already_exists, unique_write

METRIC_FIELDS = ("id", "code", "name", "kind", "unit", "aggregation", "property")


def not_null(value: object, field: str) -> None:
    """A patch may leave a field out, but may not set a required one to null."""
    if value is None:
        raise validation(f"{field} cannot be null.", field)


async def list_metrics(db: Database) -> list[Metric]:
    async with db.read() as session:
        return list((await session.scalars(metrics_statement())).all())


def metrics_statement():
    """Every metric, by code."""
    return select(Metric).order_by(Metric.code)


async def metric_ids_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, uuid.UUID]:
    codes = list(codes)
    if not codes:
        return {}
    rows = (await session.execute(select(Metric.code, Metric.id).where(Metric.code.in_(codes)))).all()
    return {code: metric_id for code, metric_id in rows}


async def known_metric_codes(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Metric.code).order_by(Metric.code))).all())


async def create_metric(
    db: Database, actor: Actor | None, *, code: str, name: str, kind: MetricKind | None = None, unit: str = "",
    aggregation: Aggregation | None = None, property_name: str | None = None, now: datetime,
) -> Metric:
    """Add a metric plans can be limited on and usage is priced by: its aggregation per billing
    month (``domain.aggregation.metric_aggregation``; ``kind`` alone: COUNTER is SUM of quantity,
    GAUGE is LATEST)."""
    code = check_metric_code(code)
    name = clean_name(name)
    kind, aggregation, property_name = metric_aggregation(kind, aggregation, property_name)
    metric = Metric(
        id=uuid.uuid4(), code=code, name=name, kind=kind, unit=check_unit(unit), created_at=now,
        aggregation=aggregation, property=property_name,
    )
    exists = partial(already_exists, "A metric with code", code, "code")
    async with unique_write(db, "code", exists) as session:
        if await session.scalar(select(Metric.id).where(Metric.code == code)) is not None:
            raise exists()
        session.add(metric)
        record_audit(session, actor=actor, action="metric.created", object_type="Metric", object_id=metric.id,
                     organization_id=None, now=now, after=snapshot(metric, *METRIC_FIELDS))
    return metric
