"""Usage: idempotent events and per-period counters."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, owned_by, reference, uuid_pk


class OrganizationMetricRow:
    """A row about one metric of one organization (its columns first in the table)."""

    id: Mapped[uuid.UUID] = uuid_pk(sort_order=-1)
    organization_id: Mapped[uuid.UUID] = owned_by(sort_order=-1)
    metric_id: Mapped[uuid.UUID] = reference("metrics", sort_order=-1)


class UsageEvent(OrganizationMetricRow, Base):
    __tablename__ = "usage_events"

    idempotency_key: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    # The event's properties (domain.aggregation: at most 20; string, integer or boolean), None without.
    properties: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("organization_id", "idempotency_key", name="uq_usage_event_key"),
        Index("ix_usage_events_org_metric_time", "organization_id", "metric_id", "occurred_at"),
    )


class UsageCounter(OrganizationMetricRow, Base):
    """A metric's aggregate for an organization (``domain.aggregation``): one row per billing
    month (COUNT, SUM, MAX, UNIQUE_COUNT, LATEST), and for a GAUGE (LATEST) one more keyed
    ``current``, its value across months. Kept incrementally by ingestion, read without events."""

    __tablename__ = "usage_counters"

    # "YYYY-MM" of the billing month, or "current" (gauges).
    period_key: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    # LATEST: the timestamp of the event whose value is held (a later-arriving older event loses);
    # other aggregations: when the row last changed.
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("organization_id", "metric_id", "period_key", name="uq_usage_counter"),
        CheckConstraint("value >= 0", name="value_not_negative"),
    )


class UsageLimitEvent(OrganizationMetricRow, Base):
    """A limit threshold (80 or 100 percent) crossed by an organization's metric in one billing
    month; the unique constraint makes its outbox event be written once, also under concurrency."""

    __tablename__ = "usage_limit_events"

    period_key: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("organization_id", "metric_id", "period_key", "threshold", name="uq_usage_limit_event"),
        CheckConstraint("threshold IN (80, 100)", name="threshold_known"),
    )


class UsageUniqueValue(Base):
    """A value of a UNIQUE_COUNT metric's property seen in one billing month: the primary key makes
    each value count once per organization, metric and month, also under concurrency (ingestion
    adds one to the month's ``usage_counters`` row for each row it inserts)."""

    __tablename__ = "usage_unique_values"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"),
                                                       primary_key=True)
    metric_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("metrics.id"), primary_key=True)
    period_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), primary_key=True)
