"""Subscriptions and their attached add-ons."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing_graphql.db.models.base import Base, enum_type, owned_by, reference, uuid_pk
from billing_graphql.db.models.catalog import Addon, Coupon, Plan
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import SubscriptionStatus


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    plan_id: Mapped[uuid.UUID] = reference("plans", index=True)
    status: Mapped[SubscriptionStatus] = mapped_column(enum_type(SubscriptionStatus, "subscription_status"))
    billing_period: Mapped[BillingPeriod] = mapped_column(enum_type(BillingPeriod, "billing_period"))
    # Periods are computed from the anchor; a change of billing period re-anchors.
    period_anchor: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    trial_ends_at: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    agent_count: Mapped[int] = mapped_column(Integer, default=1)
    payment_gateway: Mapped[str] = mapped_column(String(32), default="sandbox")
    gateway_customer_id: Mapped[str | None] = mapped_column(String(200))
    gateway_subscription_id: Mapped[str | None] = mapped_column(String(200))
    coupon_id: Mapped[uuid.UUID | None] = reference("coupons")
    # Billing periods the coupon still discounts; NULL with a coupon means forever.
    coupon_periods_remaining: Mapped[int | None] = mapped_column(Integer)
    spending_cap: Mapped[int | None] = mapped_column(BigInteger)
    # The version of the plan whose prices it pays (``plans.version`` when it started or moved);
    # ``pending_plan_version``: the version it moves to at its next renewal (updatePlan AT_RENEWAL).
    plan_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    pending_plan_version: Mapped[int | None] = mapped_column(Integer)
    # Usage already billed in the current period by the change invoice of an immediate plan change:
    # {"keys": [billing month keys], "quantities": {metric id: quantity}} (COUNTER metrics; counters
    # start again for the new plan). Cleared at renewal.
    usage_billed: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    pending_plan_id: Mapped[uuid.UUID | None] = reference("plans")
    pending_billing_period: Mapped[BillingPeriod | None] = mapped_column(
        enum_type(BillingPeriod, "pending_billing_period")
    )
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    last_retry_at: Mapped[datetime | None]
    next_retry_at: Mapped[datetime | None]
    # The billing run sends subscription.trial_will_end once (migration 0006).
    trial_will_end_sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    plan: Mapped[Plan] = relationship(foreign_keys=[plan_id], lazy="raise")
    pending_plan: Mapped[Plan | None] = relationship(foreign_keys=[pending_plan_id], lazy="raise")
    coupon: Mapped[Coupon | None] = relationship(lazy="raise")
    addons: Mapped[list[SubscriptionAddon]] = relationship(lazy="raise", cascade="all, delete-orphan")

    __table_args__ = (
        # At most one live (not canceled) subscription per organization.
        Index(
            "uq_subscriptions_one_live_per_organization",
            "organization_id",
            unique=True,
            sqlite_where=text("status <> 'CANCELED'"),
            postgresql_where=text("status <> 'CANCELED'"),
        ),
        Index("ix_subscriptions_status_period_end", "status", "current_period_end"),
        Index("ix_subscriptions_next_retry_at", "next_retry_at"),
        CheckConstraint("current_period_end > current_period_start", name="period_ordered"),
        CheckConstraint("agent_count >= 0", name="agent_count_not_negative"),
        CheckConstraint("plan_version >= 1 AND (pending_plan_version IS NULL OR pending_plan_version > plan_version)",
                        name="plan_version_order"),
        CheckConstraint("retry_count >= 0", name="retry_count_not_negative"),
        CheckConstraint("spending_cap IS NULL OR spending_cap >= 0", name="spending_cap_not_negative"),
        CheckConstraint(
            "coupon_periods_remaining IS NULL OR coupon_periods_remaining >= 0",
            name="coupon_periods_not_negative",
        ),
    )


class SubscriptionAddon(Base):
    __tablename__ = "subscription_addons"

    id: Mapped[uuid.UUID] = uuid_pk()
    subscription_id: Mapped[uuid.UUID] = owned_by("subscriptions")
    addon_id: Mapped[uuid.UUID] = reference("addons")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    addon: Mapped[Addon] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("subscription_id", "addon_id", name="uq_subscription_addon"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )
