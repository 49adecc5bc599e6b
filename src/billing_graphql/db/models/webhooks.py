"""Webhook endpoints, their deliveries (one per outbox event and endpoint), and inbound
gateway events (one per gateway and event id)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, enum_type, owned_by, uuid_pk


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WebhookEndpoint(Base):
    """A receiver of outbox events: an organization's (``organization_id``) or, when that is
    NULL, a platform-wide one receiving every organization's events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = owned_by(index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation the old secret keeps signing (a second signature) until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None]
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    # The first failed attempt since the last success; 5 days of that disables the endpoint.
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "(previous_secret IS NULL) = (previous_secret_expires_at IS NULL)", name="previous_secret_expiry"
        ),
    )


class WebhookDelivery(Base):
    """One outbox event for one endpoint. Claimed by a worker with a lease (``claimed_until`` and
    ``claim_token``): a worker that dies after claiming loses the claim when the lease ends, and
    a result is recorded only under the token that claimed it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = uuid_pk()
    endpoint_id: Mapped[uuid.UUID] = owned_by("webhook_endpoints")
    event_id: Mapped[uuid.UUID] = owned_by("outbox_events", index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[DeliveryStatus] = mapped_column(enum_type(DeliveryStatus, "delivery_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the current retry schedule began (a redelivery starts a new one).
    schedule_start: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    claim_token: Mapped[uuid.UUID | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response_body: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_delivery_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
        CheckConstraint("attempts >= 0 AND schedule_start >= 0 AND schedule_start <= attempts",
                        name="attempts_counted"),
        CheckConstraint("length(last_response_body) <= 2048", name="response_body_2kb"),
        CheckConstraint("status <> 'PENDING' OR next_attempt_at IS NOT NULL", name="pending_is_scheduled"),
        CheckConstraint("status <> 'DELIVERED' OR delivered_at IS NOT NULL", name="delivered_has_time"),
    )


class GatewayEvent(Base):
    """An inbound processor event, recorded once: a retried delivery of it changes nothing."""

    __tablename__ = "gateway_events"

    id: Mapped[uuid.UUID] = uuid_pk()
    gateway: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    result: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("gateway", "event_id", name="uq_gateway_event"),)
