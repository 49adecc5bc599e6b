"""Operational records: outbox events, audit log, idempotency, the test clock (webhooks: ``webhooks.py``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, ordered_uuid, owned_by, uuid_pk


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox_events"

    id: Mapped[uuid.UUID] = uuid_pk(default=ordered_uuid)  # one transaction's events, in write order
    organization_id: Mapped[uuid.UUID | None] = owned_by(index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_undispatched", "dispatched_at", "created_at"),)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = owned_by(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class IdempotencyRecord(Base):
    """The stored result of a money-moving mutation, per organization and key."""

    __tablename__ = "idempotency_records"

    id: Mapped[uuid.UUID] = uuid_pk()
    # The organization acted on; all-zero UUID for actions outside one (kept non-null so
    # the unique constraint holds on both databases).
    scope_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("scope_id", "key", name="uq_idempotency_scope_key"),)


class TestClock(Base):
    """The frozen time used when BILLING_TEST_CLOCK is on; a single row moved by advanceClock."""

    __tablename__ = "test_clock"
    __test__ = False  # not a pytest test class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    now: Mapped[datetime]

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
