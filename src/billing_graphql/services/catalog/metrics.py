"""The metric catalog, and what the plan, add-on and coupon services share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Metric, MetricKind
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import check_metric_code, check_unit, clean_name
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.platform.audit import record_audit, snapshot

METRIC_FIELDS = ("id", "code", "name", "kind", "unit")


def already_exists(what: str, value: str, field: str) -> BillingError:
    return BillingError(BillingErrorCode.ALREADY_EXISTS, f"{what} {value!r} exists.", field=field)


def is_unique_violation(exc: IntegrityError, column: str) -> bool:
    """Whether an IntegrityError is the unique constraint on ``column`` (SQLite and PostgreSQL
    both name the column or the ``uq_<table>_<column>`` constraint in their message)."""
    message = str(exc.orig).lower()
    return ("unique" in message or "duplicate" in message) and column in message


def not_null(value: object, field: str) -> None:
    """A patch may leave a field out, but may not set a required one to null."""
    if value is None:
        raise validation(f"{field} cannot be null.", field)


async def list_metrics(db: Database) -> list[Metric]:
    async with db.read() as session:
        return list((await session.scalars(select(Metric).order_by(Metric.code))).all())


async def metric_ids_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, uuid.UUID]:
    codes = list(codes)
    if not codes:
        return {}
    rows = (await session.execute(select(Metric.code, Metric.id).where(Metric.code.in_(codes)))).all()
    return {code: metric_id for code, metric_id in rows}


async def known_metric_codes(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(Metric.code).order_by(Metric.code))).all())


async def create_metric(
    db: Database, actor: Actor | None, *, code: str, name: str, kind: MetricKind, unit: str = "", now: datetime
) -> Metric:
    """Add a metric plans can be limited on (GAUGE: a current count; COUNTER: summed per month)."""
    code = check_metric_code(code)
    metric = Metric(
        id=uuid.uuid4(), code=code, name=clean_name(name), kind=kind, unit=check_unit(unit), created_at=now
    )
    try:
        async with db.write() as session:
            if await session.scalar(select(Metric.id).where(Metric.code == code)) is not None:
                raise already_exists("A metric with code", code, "code")
            session.add(metric)
            record_audit(
                session,
                actor=actor,
                action="metric.created",
                object_type="Metric",
                object_id=metric.id,
                organization_id=None,
                now=now,
                after=snapshot(metric, *METRIC_FIELDS),
            )
    except IntegrityError as exc:
        if not is_unique_violation(exc, "code"):
            raise
        raise already_exists("A metric with code", code, "code") from None
    return metric
