"""Checkout sessions: what a started checkout will subscribe to once its order is paid.

``startCheckout`` writes the first invoice (OPEN, numbered, ``billing_reason``
SUBSCRIPTION_CREATE, no subscription yet, the gateway order's id on
``invoices.gateway_order_id``) and one row here with the plan, billing period, coupon code,
billed agent count and gateway it was priced with. ``confirmCheckout`` creates the
subscription from this row and marks it COMPLETED with the payment and subscription it made.
A newer checkout of the organization replaces an OPEN one (EXPIRED, its invoice VOID).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, enum_type, owned_by, reference, uuid_pk
from billing_graphql.domain.periods import BillingPeriod


class CheckoutStatus(enum.Enum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"


class CheckoutSession(Base):
    __tablename__ = "checkout_sessions"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    invoice_id: Mapped[uuid.UUID] = reference("invoices", unique=True)
    plan_id: Mapped[uuid.UUID] = reference("plans")
    billing_period: Mapped[BillingPeriod] = mapped_column(enum_type(BillingPeriod, "checkout_billing_period"))
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    agent_count: Mapped[int] = mapped_column(Integer)
    gateway: Mapped[str] = mapped_column(String(32))
    status: Mapped[CheckoutStatus] = mapped_column(enum_type(CheckoutStatus, "checkout_status"))
    gateway_payment_id: Mapped[str | None] = mapped_column(String(200))
    payment_id: Mapped[uuid.UUID | None] = reference("payments")
    subscription_id: Mapped[uuid.UUID | None] = reference("subscriptions")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        # At most one OPEN checkout per organization (a newer one replaces it).
        Index(
            "uq_checkout_sessions_one_open_per_organization",
            "organization_id",
            unique=True,
            sqlite_where=text("status = 'OPEN'"),
            postgresql_where=text("status = 'OPEN'"),
        ),
        CheckConstraint("agent_count >= 0", name="agent_count_not_negative"),
        CheckConstraint(
            "status <> 'COMPLETED' OR (gateway_payment_id IS NOT NULL AND payment_id IS NOT NULL"
            " AND subscription_id IS NOT NULL AND completed_at IS NOT NULL)",
            name="completed_has_payment_and_subscription",
        ),
    )
