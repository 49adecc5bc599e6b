"""The `Subscription` object type (named as its users call it; the schema has no subscription root)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay

from billing_graphql.db.models import AddonUnit, CouponDuration, DiscountType
from billing_graphql.db.models import Subscription as SubscriptionRow
from billing_graphql.domain.periods import BillingPeriod as DomainBillingPeriod
from billing_graphql.domain.status import SubscriptionStatus as DomainSubscriptionStatus
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.common import Money, decode_ids
from billing_graphql.graphql.platform.types import OrganizationType
from billing_graphql.graphql.catalog.coupon_values import discount_value
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.graphql.catalog.types import DiscountType as CouponDiscountType
from billing_graphql.services.subscriptions.plan_changes import Effective as DomainEffective
from billing_graphql.services.subscriptions.common import addon_price, plan_price

BillingPeriod = strawberry.enum(DomainBillingPeriod, name="BillingPeriod")
SubscriptionStatus = strawberry.enum(DomainSubscriptionStatus, name="SubscriptionStatus")
ChangeEffective = strawberry.enum(
    DomainEffective, name="ChangeEffective", description="When a plan change takes effect."
)

_PROBLEM_STATUSES = {DomainSubscriptionStatus.TRIALING, DomainSubscriptionStatus.PAST_DUE,
                     DomainSubscriptionStatus.UNPAID}


@strawberry.type(description="An add-on attached to a subscription.")
class SubscriptionAddon:
    addon_id: strawberry.ID
    name: str
    slug: str
    per_agent: bool = strawberry.field(description="Billed per agent (quantity x agents).")
    quantity: int
    unit_price: Money = strawberry.field(description="Price of one unit for the subscription's billing period.")
    amount: Money = strawberry.field(description="What it adds to each period at the billed agent count.")
    attached_at: datetime


@strawberry.type(description="The coupon applied to a subscription and how long it still runs.")
class AppliedCoupon:
    code: str
    name: str
    discount_type: CouponDiscountType
    discount_value: Decimal = strawberry.field(
        description="PERCENTAGE: the percent off; FIXED: the amount off in major units of its currency."
    )
    percent_off: int | None = strawberry.field(deprecation_reason="Use discountValue.")
    amount_off: Money | None = strawberry.field(deprecation_reason="Use discountValue.")
    duration: str = strawberry.field(description="ONCE, REPEATING or FOREVER.")
    duration_in_months: int | None
    periods_remaining: int | None = strawberry.field(
        description="Billing periods it still discounts; null means forever."
    )


@strawberry.type(description="A plan or billing-period change scheduled for the end of the period.")
class PendingChange:
    plan: PlanType | None
    billing_period: BillingPeriod
    effective_at: datetime


@strawberry.type(description="The cap on a period's usage charges (extra seats, overage).")
class SpendingCap:
    current_cap: Money | None = strawberry.field(description="Null: no cap.")
    minimum_required_cap: Money = strawberry.field(description="What the current seats already cost per period.")
    require_increase: bool = strawberry.field(description="The cap is below the minimum (agents were added).")
    current_agent_count: int


@strawberry.type(name="Subscription", description="An organization's subscription to a plan.")
class SubscriptionType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[SubscriptionRow]

    @classmethod
    def from_row(cls, row: SubscriptionRow) -> SubscriptionType:
        return cls(id=str(row.id), row=row)

    @classmethod
    def maybe(cls, row: SubscriptionRow | None) -> SubscriptionType | None:
        return cls.from_row(row) if row is not None else None

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationType | None:
        row = await info.context.loaders.organization_by_id.load(self.row.organization_id)
        return OrganizationType.from_row(row) if row else None

    @strawberry.field
    async def plan(self, info: Info) -> PlanType:
        return PlanType.from_row(await info.context.loaders.plan_by_id.load(self.row.plan_id))

    @strawberry.field
    def status(self) -> SubscriptionStatus:
        return self.row.status

    @strawberry.field
    def billing_period(self) -> BillingPeriod:
        return self.row.billing_period

    @strawberry.field(description="Set to cancel when the current period ends; `resume` clears it.")
    def cancel_at_period_end(self) -> bool:
        return self.row.cancel_at_period_end

    @strawberry.field
    def cancel_reason(self) -> str | None:
        return self.row.cancel_reason

    @strawberry.field
    def canceled_at(self) -> datetime | None:
        return self.row.canceled_at

    @strawberry.field
    def ended_at(self) -> datetime | None:
        return self.row.ended_at

    @strawberry.field
    def trial_ends_at(self) -> datetime | None:
        return self.row.trial_ends_at

    @strawberry.field(description="Same as trialEndsAt (the name seed 004 uses).")
    def trial_end_date(self) -> datetime | None:
        return self.row.trial_ends_at

    @strawberry.field
    def is_trial(self) -> bool:
        return self.row.status is DomainSubscriptionStatus.TRIALING

    @strawberry.field(description="The trial has ended and the subscription is not in good standing "
                                  "(not yet converted, or its first payment failed).")
    def expired_trial(self, info: Info) -> bool:
        ends = self.row.trial_ends_at
        return ends is not None and info.context.now >= ends and self.row.status in _PROBLEM_STATUSES

    @strawberry.field
    def current_period_start(self) -> datetime:
        return self.row.current_period_start

    @strawberry.field
    def current_period_end(self) -> datetime:
        return self.row.current_period_end

    @strawberry.field
    def payment_gateway(self) -> str:
        return self.row.payment_gateway

    @strawberry.field
    def gateway_customer_id(self) -> str | None:
        return self.row.gateway_customer_id

    @strawberry.field
    def gateway_subscription_id(self) -> str | None:
        return self.row.gateway_subscription_id

    @strawberry.field(description="The agent count the current period was billed for.")
    def agent_count(self) -> int:
        return self.row.agent_count

    @strawberry.field
    async def addons(self, info: Info) -> list[SubscriptionAddon]:
        rows = await info.context.loaders.addons_by_subscription.load(self.row.id)
        period, agents = self.row.billing_period, self.row.agent_count
        return [
            SubscriptionAddon(
                addon_id=strawberry.ID(relay.to_base64("Addon", addon.id)),
                name=addon.name,
                slug=addon.slug,
                per_agent=addon.unit is AddonUnit.PER_AGENT,
                quantity=attached.quantity,
                unit_price=Money.of(addon_price(addon, 1).unit_price(period), addon.currency),
                amount=Money.of(addon_price(addon, attached.quantity).amount(period, agents), addon.currency),
                attached_at=attached.created_at,
            )
            for attached, addon in rows
        ]

    @strawberry.field
    async def coupon(self, info: Info) -> AppliedCoupon | None:
        if self.row.coupon_id is None:
            return None
        coupon = await info.context.loaders.coupon_by_id.load(self.row.coupon_id)
        if coupon is None:
            return None
        fixed = coupon.discount_type is DiscountType.FIXED
        return AppliedCoupon(
            code=coupon.code,
            name=coupon.name,
            discount_type=coupon.discount_type,
            discount_value=discount_value(coupon),
            percent_off=None if fixed else coupon.percent_off,
            amount_off=Money.of(coupon.amount_off, coupon.currency) if fixed else None,
            duration=coupon.duration.value,
            duration_in_months=coupon.duration_in_months if coupon.duration is CouponDuration.REPEATING else None,
            periods_remaining=self.row.coupon_periods_remaining,
        )

    @strawberry.field
    async def pending_change(self, info: Info) -> PendingChange | None:
        row = self.row
        if row.pending_plan_id is None and row.pending_billing_period is None:
            return None
        plan = await info.context.loaders.plan_by_id.load(row.pending_plan_id or row.plan_id)
        return PendingChange(
            plan=PlanType.from_row(plan) if plan else None,
            billing_period=row.pending_billing_period or row.billing_period,
            effective_at=row.current_period_end,
        )

    @strawberry.field
    async def spending_cap(self, info: Info) -> SpendingCap:
        plan = await info.context.loaders.plan_by_id.load(self.row.plan_id)
        gauge = await info.context.loaders.agents_by_organization.load(self.row.organization_id)
        agents = self.row.agent_count if gauge is None else gauge
        minimum = plan_price(plan).seats(self.row.billing_period, agents)
        cap = self.row.spending_cap
        return SpendingCap(
            current_cap=Money.maybe(cap, plan.currency),
            minimum_required_cap=Money.of(minimum, plan.currency),
            require_increase=cap is not None and cap < minimum,
            current_agent_count=agents,
        )

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        rows = await info.context.loaders.subscription_by_id.load_many(
            [key or uuid.UUID(int=0) for key in decode_ids(node_ids)]
        )
        return [
            cls.from_row(row)
            if row is not None and actor is not None
            and actor.organization_in_scope(row.organization_id) == row.organization_id
            else None
            for row in rows
        ]


@strawberry.type
class SubscriptionConnection(relay.Connection[SubscriptionType]):
    """Subscriptions, newest first, paged."""
