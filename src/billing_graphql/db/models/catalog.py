"""The product catalog: metrics, plans with limits and features, add-ons, coupons, tax rates."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing_graphql.db.models.base import Base, enum_type, money_column, owned_by, reference, uuid_pk
from billing_graphql.db.types import DecimalText
from billing_graphql.domain.aggregation import Aggregation, MetricKind
from billing_graphql.domain.catalog import CouponDuration
from billing_graphql.domain.invoices import DiscountKind


class AddonUnit(enum.Enum):
    FLAT = "FLAT"
    PER_AGENT = "PER_AGENT"


def _aggregation_of_kind(context) -> Aggregation:
    """A metric written without an aggregation takes its kind's: COUNTER is SUM, GAUGE is LATEST."""
    kind = context.get_current_parameters()["kind"]
    return Aggregation.LATEST if kind in (MetricKind.GAUGE, MetricKind.GAUGE.value) else Aggregation.SUM


class Metric(Base):
    __tablename__ = "metrics"

    id: Mapped[uuid.UUID] = uuid_pk()
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[MetricKind] = mapped_column(enum_type(MetricKind, "metric_kind"))
    unit: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]
    # How events aggregate per billing month (domain.aggregation); kind is GAUGE exactly when LATEST.
    aggregation: Mapped[Aggregation] = mapped_column(enum_type(Aggregation, "metric_aggregation"),
                                                           default=_aggregation_of_kind)
    property: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("(kind = 'GAUGE' AND aggregation = 'LATEST') OR (kind = 'COUNTER' AND aggregation <> 'LATEST')",
                        name="kind_matches_aggregation"),
        CheckConstraint("(aggregation = 'COUNT' AND property IS NULL) OR (aggregation = 'UNIQUE_COUNT' AND property IS "
                        "NOT NULL) OR aggregation IN ('SUM', 'MAX', 'LATEST')", name="property_fits_aggregation"),
    )


class CatalogItem:
    """What plans and add-ons share: a named, priced item of the catalog, shown in sort order
    while active. Its identity columns come first in the table, the status and times last."""

    id: Mapped[uuid.UUID] = uuid_pk(sort_order=-1)
    name: Mapped[str] = mapped_column(String(200), sort_order=-1)
    slug: Mapped[str] = mapped_column(String(100), unique=True, sort_order=-1)
    description: Mapped[str] = mapped_column(Text, default="", sort_order=-1)
    currency: Mapped[str] = mapped_column(String(3), default="IDR", sort_order=-1)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Plan(CatalogItem, Base):
    __tablename__ = "plans"

    base_price_monthly: Mapped[int] = money_column()
    base_price_annual: Mapped[int] = money_column()
    per_agent_price: Mapped[int] = money_column()
    overage_message_price: Mapped[int] = money_column()
    included_agents: Mapped[int] = mapped_column(Integer, default=1)
    trial_days: Mapped[int] = mapped_column(Integer, default=14)

    limits: Mapped[list[PlanLimit]] = relationship(lazy="raise", cascade="all, delete-orphan")
    features: Mapped[list[PlanFeature]] = relationship(lazy="raise", cascade="all, delete-orphan")

    __table_args__ = (
        CheckConstraint(
            "base_price_monthly >= 0 AND base_price_annual >= 0 AND per_agent_price >= 0"
            " AND overage_message_price >= 0",
            name="prices_not_negative",
        ),
        CheckConstraint("trial_days >= 0 AND trial_days <= 730", name="trial_days_range"),
        CheckConstraint("included_agents >= 0", name="included_agents_not_negative"),
        Index("ix_plans_active_order", "is_active", "sort_order", "base_price_monthly"),
    )


class PlanLimit(Base):
    """A plan's limit on one metric; ``limit_value`` NULL means unlimited."""

    __tablename__ = "plan_limits"

    plan_id: Mapped[uuid.UUID] = owned_by("plans", primary_key=True)
    metric_id: Mapped[uuid.UUID] = reference("metrics", primary_key=True)
    limit_value: Mapped[int | None] = mapped_column(BigInteger)

    metric: Mapped[Metric] = relationship(lazy="raise")

    __table_args__ = (CheckConstraint("limit_value IS NULL OR limit_value >= 0", name="limit_not_negative"),)


class PlanFeature(Base):
    __tablename__ = "plan_features"

    plan_id: Mapped[uuid.UUID] = owned_by("plans", primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Addon(CatalogItem, Base):
    __tablename__ = "addons"

    price_monthly: Mapped[int] = money_column()
    price_annual: Mapped[int] = money_column()
    unit: Mapped[AddonUnit] = mapped_column(enum_type(AddonUnit, "addon_unit"), default=AddonUnit.FLAT)

    __table_args__ = (
        CheckConstraint("price_monthly >= 0 AND price_annual >= 0", name="prices_not_negative"),
    )


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[uuid.UUID] = uuid_pk()
    # Stored upper-case, so the unique constraint is case-insensitive.
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    discount_type: Mapped[DiscountKind] = mapped_column(enum_type(DiscountKind, "discount_type"))
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    duration: Mapped[CouponDuration] = mapped_column(
        enum_type(CouponDuration, "coupon_duration"), default=CouponDuration.ONCE
    )
    duration_in_months: Mapped[int | None] = mapped_column(Integer)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    current_uses: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    plans: Mapped[list[CouponPlan]] = relationship(lazy="raise", cascade="all, delete-orphan")

    __table_args__ = (
        CheckConstraint("code = UPPER(code)", name="code_upper_case"),
        # A CHECK passes when it is NULL: each nullable column is tested for NULL explicitly.
        CheckConstraint(
            "(discount_type = 'PERCENTAGE' AND percent_off IS NOT NULL AND percent_off BETWEEN 1 AND 100"
            " AND amount_off IS NULL)"
            " OR (discount_type = 'FIXED' AND amount_off IS NOT NULL AND amount_off > 0 AND currency IS NOT NULL"
            " AND percent_off IS NULL)",
            name="discount_shape",
        ),
        CheckConstraint(
            "(duration = 'REPEATING' AND duration_in_months IS NOT NULL AND duration_in_months >= 1)"
            " OR (duration <> 'REPEATING' AND duration_in_months IS NULL)",
            name="duration_months",
        ),
        CheckConstraint("max_uses IS NULL OR max_uses >= 1", name="max_uses_positive"),
        CheckConstraint(
            "current_uses >= 0 AND (max_uses IS NULL OR current_uses <= max_uses)",
            name="uses_within_max",
        ),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_until > valid_from",
            name="validity_window",
        ),
    )


class CouponPlan(Base):
    """A plan a coupon applies to; a coupon with none applies to every plan."""

    __tablename__ = "coupon_plans"

    coupon_id: Mapped[uuid.UUID] = owned_by("coupons", primary_key=True)
    plan_id: Mapped[uuid.UUID] = owned_by("plans", primary_key=True)


class CouponRedemption(Base):
    __tablename__ = "coupon_redemptions"

    id: Mapped[uuid.UUID] = uuid_pk()
    coupon_id: Mapped[uuid.UUID] = reference("coupons", index=True)
    organization_id: Mapped[uuid.UUID] = owned_by()
    subscription_id: Mapped[uuid.UUID | None] = reference("subscriptions", ondelete="SET NULL")
    redeemed_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("coupon_id", "subscription_id", name="uq_redemption_per_subscription"),)


class TaxRate(Base):
    """A tax rate in force from a date, for a currency or a country.

    ``base_numerator / base_denominator`` is the share of the price that is taxed
    (PPN: 12% on a base of 11/12, i.e. 11% effective).
    """

    __tablename__ = "tax_rates"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100))
    rate: Mapped[Decimal] = mapped_column(DecimalText)
    base_numerator: Mapped[int] = mapped_column(Integer, default=1)
    base_denominator: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str | None] = mapped_column(String(3))
    country: Mapped[str | None] = mapped_column(String(2))
    effective_from: Mapped[datetime]
    created_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("base_numerator > 0 AND base_denominator > 0", name="base_positive"),
        CheckConstraint("currency IS NOT NULL OR country IS NOT NULL", name="scope_given"),
        Index("ix_tax_rates_currency_from", "currency", "effective_from"),
    )
