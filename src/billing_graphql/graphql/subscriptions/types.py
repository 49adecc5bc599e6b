"""The `Subscription` object type (named as its users call it; the schema has no subscription root)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy import type_coerce
from strawberry import relay

from billing_graphql.db.models import AddonUnit
from billing_graphql.db.models import Coupon as CouponRow
from billing_graphql.db.models import Plan as PlanRow
from billing_graphql.db.models import Subscription as SubscriptionRow
from billing_graphql.db.models import SubscriptionAddon as SubscriptionAddonRow
from billing_graphql.db.types import UTCDateTime
from billing_graphql.domain.periods import BillingPeriod as DomainBillingPeriod
from billing_graphql.domain.proration import Effective as DomainEffective
from billing_graphql.domain.proration import billed_agents, cap_too_low
from billing_graphql.domain.status import SubscriptionStatus as DomainSubscriptionStatus
from billing_graphql.domain.status import TRIAL_PROBLEM_STATUSES, trial_expired
from billing_graphql.domain.usage import GAUGE_KEY
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.catalog.types import COUPON_FORMS
from billing_graphql.graphql.catalog.types import DiscountType as CouponDiscountType
from billing_graphql.graphql.columns import Children, Nested, Parent, columns, computed, global_id, renamed, resolved
from billing_graphql.graphql.common import Money, from_row, load_nodes
from billing_graphql.graphql.billing.lines import InvoicePreview
from billing_graphql.graphql.platform.types import OrganizationType
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.services.subscriptions.pricing import addon_price, plan_price, version_price
from billing_graphql.services.usage.reading import SEATS_METRIC

BillingPeriod = strawberry.enum(DomainBillingPeriod, name="BillingPeriod")
SubscriptionStatus = strawberry.enum(DomainSubscriptionStatus, name="SubscriptionStatus")
ChangeEffective = strawberry.enum(
    DomainEffective, name="ChangeEffective", description="When a plan change takes effect."
)

@strawberry.type(description="An add-on attached to a subscription.")
class SubscriptionAddon:
    id: strawberry.ID = strawberry.field(description="The attachment's own global id (SubscriptionAddon).")
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


async def _organization(root: SubscriptionType, info: Info) -> OrganizationType | None:
    row = await info.context.loaders.organization_by_id.load(root.row.organization_id)
    return OrganizationType.from_row(row) if row else None


async def _plan(root: SubscriptionType, info: Info) -> PlanType:
    return PlanType.from_row(await info.context.loaders.plan_by_id.load(root.row.plan_id))


def _expired_trial(root: SubscriptionType, info: Info) -> bool:
    return trial_expired(root.row.status, root.row.trial_ends_at, info.context.now)


async def _agent_count(root: SubscriptionType, info: Info) -> int:
    return await billable_agents(info, root.row)


async def billable_agents(info: Info, row: SubscriptionRow) -> int:
    """The billable seat count: the organization's ``agents`` gauge, else the stored count
    (``domain.proration.billed_agents``), as the renewal, the usage view and MRR count it."""
    return billed_agents(await info.context.loaders.agents_by_organization.load(row.organization_id), row.agent_count)


async def subscription_addons(info: Info, subscription: SubscriptionRow) -> list[SubscriptionAddon]:
    """The add-ons attached to ``subscription``, priced at its period and billable agent count."""
    rows = await info.context.loaders.addons_by_subscription.load(subscription.id)
    period, agents = subscription.billing_period, await billable_agents(info, subscription)
    return [
        SubscriptionAddon(
            id=strawberry.ID(relay.to_base64("SubscriptionAddon", attached.id)),
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


async def _addons(root: SubscriptionType, info: Info) -> list[SubscriptionAddon]:
    return await subscription_addons(info, root.row)


async def _coupon(root: SubscriptionType, info: Info) -> AppliedCoupon | None:
    if root.row.coupon_id is None:
        return None
    coupon = await info.context.loaders.coupon_by_id.load(root.row.coupon_id)
    return from_row(AppliedCoupon, coupon, root.row) if coupon is not None else None


def _has_pending_change(row: SubscriptionRow) -> bool:
    return row.pending_plan_id is not None or row.pending_billing_period is not None


async def _pending_change(root: SubscriptionType, info: Info) -> PendingChange | None:
    row = root.row
    if not _has_pending_change(row):
        return None
    plan = await info.context.loaders.plan_by_id.load(row.pending_plan_id or row.plan_id)
    return from_row(PendingChange, row, plan=PlanType.from_row(plan) if plan else None)


async def _upcoming_invoice(root: SubscriptionType, info: Info) -> InvoicePreview | None:
    from billing_graphql.services.billing.renewals import upcoming_invoice

    if root.upcoming is not UNREAD:  # read with the row (the compiled path: ``subscription_query``)
        return root.upcoming
    async with info.context.db.read() as session:
        return InvoicePreview.from_value(await upcoming_invoice(session, root.row))


async def _spending_cap(root: SubscriptionType, info: Info) -> SpendingCap:
    return await spending_cap_of(info, root.row)


async def spending_cap_of(info: Info, row: SubscriptionRow) -> SpendingCap:
    """A subscription's spending cap against what its current seats cost (through the loaders)."""
    plan = await info.context.loaders.plan_by_id.load(row.plan_id)
    agents = await billable_agents(info, row)
    prices = plan_price(plan)
    if row.plan_version < plan.version:  # on an older version: its frozen prices (one more read)
        async with info.context.db.read() as session:
            prices = await version_price(session, plan, row.plan_version)
    minimum = prices.seats(row.billing_period, agents)
    cap = row.spending_cap
    return SpendingCap(
        current_cap=Money.maybe(cap, plan.currency),
        minimum_required_cap=Money.of(minimum, plan.currency),
        require_increase=cap_too_low(cap, minimum),
        current_agent_count=agents,
    )


UNREAD = object()  # ``SubscriptionType.upcoming``: not read with the row, the resolver reads it


@strawberry.type(name="Subscription", description="An organization's subscription to a plan.")
class SubscriptionType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[SubscriptionRow]
    # ``upcomingInvoice`` where it was read and priced with the row (None: null), else ``UNREAD``.
    upcoming: strawberry.Private[Any] = UNREAD

    @classmethod
    def from_row(cls, row: SubscriptionRow, upcoming: Any = UNREAD) -> SubscriptionType:
        return from_row(cls, row, upcoming=upcoming)

    @classmethod
    def maybe(cls, row: SubscriptionRow | None) -> SubscriptionType | None:
        return cls.from_row(row) if row is not None else None

    organization: OrganizationType | None = strawberry.field(resolver=_organization)
    plan: PlanType = strawberry.field(resolver=_plan)
    plan_version: int = strawberry.field(description="The version of the plan whose prices the subscription pays "
                                                     "(the plan's `version` when it started or last moved).")
    pending_plan_version: int | None = strawberry.field(description=(
        "The version it moves to at its next renewal (a price change applied AT_RENEWAL); upcomingInvoice shows "
        "its prices."))
    status: SubscriptionStatus
    billing_period: BillingPeriod
    cancel_at_period_end: bool = strawberry.field(
        description="Set to cancel when the current period ends; `resume` clears it."
    )
    cancel_reason: str | None
    canceled_at: datetime | None
    ended_at: datetime | None
    trial_ends_at: datetime | None
    trial_end_date: datetime | None = strawberry.field(description="Same as trialEndsAt (the name seed 004 uses).")
    is_trial: bool
    expired_trial: bool = strawberry.field(resolver=_expired_trial, description=(
        "The trial has ended and the subscription is not in good standing "
        "(not yet converted, or its first payment failed)."))
    current_period_start: datetime
    current_period_end: datetime
    payment_gateway: str
    gateway_customer_id: str | None
    gateway_subscription_id: str | None
    agent_count: int = strawberry.field(resolver=_agent_count, description=(
        "The billable seat count now: the organization's `agents` gauge (else the count last billed). The "
        "next renewal bills it, `usage.agentCount` and MRR count it."))
    addons: list[SubscriptionAddon] = strawberry.field(resolver=_addons)
    coupon: AppliedCoupon | None = strawberry.field(resolver=_coupon)
    pending_change: PendingChange | None = strawberry.field(resolver=_pending_change)
    spending_cap: SpendingCap = strawberry.field(resolver=_spending_cap)
    retry_count: int = strawberry.field(description="Dunning: payment retries made since the renewal payment failed.")
    last_retry_at: datetime | None = strawberry.field(description="Dunning: when the last payment retry ran.")
    next_retry_at: datetime | None = strawberry.field(
        description="Dunning: when the billing run charges the open invoices again (null: none scheduled).")
    upcoming_invoice: InvoicePreview | None = strawberry.field(resolver=_upcoming_invoice, description=(
        "What the next renewal (or the trial's end) will bill, computed by the billing run's own code and never "
        "written; null when the subscription ends instead. Usage overage counts the usage recorded so far. "
        "Several queries: ask it for one subscription, not in lists."))
    created_at: datetime
    updated_at: datetime

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        return await load_nodes(info.context.loaders.subscription_by_id, node_ids, cls.from_row,
                                lambda row: actor is not None and actor.may_see(row.organization_id))


def _is_trial(row: SubscriptionRow) -> bool:
    return row.status is DomainSubscriptionStatus.TRIALING


# The SQL forms of the resolvers above, for the staff list ``subscriptions`` and the tenant's ``subscription``: rows of
# ``subscriptions`` with the request's clock (``at_now``). upcomingInvoice has none (the billing run's own code): a
# selection of it keeps its Python plan.

NOW = "bgq_now"  # the column of a subscription's row on the SQL tier holding the request's clock


def at_now(statement: Any, now: Any) -> Any:
    """``statement`` (of subscription rows) with the request's clock as the column ``NOW``, in the form the
    database stores times (SQLite: text), which ``expiredTrial``'s SQL form compares with ``trial_ends_at``."""
    return statement.add_columns(type_coerce(now, UTCDateTime).label(NOW))


def agents_sql(subscription: str) -> str:
    """``billable_agents``: the organization's ``agents`` gauge, else the subscription's ``agent_count`` (of the row
    ``subscription``: a subscription's, or a computed row with its ``organization_id`` and ``agent_count``)."""
    return (f"coalesce((SELECT c.value FROM usage_counters AS c JOIN metrics AS m ON m.id = c.metric_id "
            f"WHERE c.organization_id = {subscription}.organization_id AND m.code = '{SEATS_METRIC}' "
            f"AND c.period_key = '{GAUGE_KEY}'), {subscription}.agent_count)")


def _expired_trial_sql(sql: Any, row: str, *parents: str) -> str:
    """``trial_expired``: a trial's end at or before the request's clock, and a status of a trial not paid for."""
    statuses = ", ".join(f"'{name}'" for name in sorted(status.name for status in TRIAL_PROBLEM_STATUSES))
    return (f"({row}.trial_ends_at IS NOT NULL AND {row}.{NOW} >= {row}.trial_ends_at "
            f"AND {row}.status IN ({statuses}))")


def _by_period(subscription: str, monthly: str, annual: str) -> str:
    """``monthly`` on a MONTHLY subscription, else ``annual`` (``AddonPrice.unit_price``, ``BillingPeriod.months``)."""
    return (f"CASE WHEN {subscription}.billing_period = '{DomainBillingPeriod.MONTHLY.name}' THEN {monthly} "
            f"ELSE {annual} END")


def _addon_sql(expression: str, attached: str) -> str:
    """``expression`` of the add-on (``a``) of the attachment ``attached``."""
    return f"(SELECT {expression} FROM addons AS a WHERE a.id = {attached}.addon_id)"


columns(
    SubscriptionType, SubscriptionRow,
    trial_end_date=renamed("trial_ends_at"),
    is_trial=computed(lambda row, *parents: _is_trial(row),
                      lambda sql, row, *parents: f"({row}.status = '{DomainSubscriptionStatus.TRIALING.name}')"),
    expired_trial=resolved(_expired_trial_sql),
    agent_count=resolved(lambda sql, row, *parents: agents_sql(row)),
    organization=resolved(Parent("organizations", "organization_id")),
    plan=resolved(Parent("plans", "plan_id")),
    # ``attached_addons``' order: the add-ons' sort order, name, id.
    addons=resolved(Children("subscription_addons", "subscription_id", lambda alias: (
        f"{_addon_sql('a.sort_order', alias)}, {_addon_sql('a.name', alias)}, {alias}.addon_id"))),
    coupon=resolved(Parent("coupons", "coupon_id")),
    pending_change=resolved(Parent("subscriptions", None, where=lambda own, row: (
        f"{own}.id = {row}.id AND ({row}.pending_plan_id IS NOT NULL OR {row}.pending_billing_period IS NOT NULL)"))),
    spending_cap=resolved(Parent("plans", "plan_id")),
)


# SubscriptionAddon: an attachment's row (of the table subscription_addons) under its subscription's, priced as
# ``subscription_addons`` above prices it: at the subscription's period and billable agents.

def _unit_price_sql(subscription: str) -> str:
    """``AddonPrice.unit_price`` of the add-on ``a``."""
    return _by_period(subscription, "a.price_monthly", "a.price_annual")


def _addon_amount_sql(attached: str, subscription: str) -> str:
    """``AddonPrice.amount``: the unit price x the quantity (x the billable agents, per agent)."""
    return _addon_sql(f"({_unit_price_sql(subscription)}) * CASE WHEN a.unit = '{AddonUnit.PER_AGENT.name}' "
                      f"THEN {attached}.quantity * {agents_sql(subscription)} ELSE {attached}.quantity END", attached)


columns(
    SubscriptionAddon, SubscriptionAddonRow,
    id=global_id("SubscriptionAddon"),
    addon_id=resolved(lambda sql, row, *parents: sql.global_id("Addon", f"{row}.addon_id")),
    name=resolved(lambda sql, row, *parents: _addon_sql("a.name", row)),
    slug=resolved(lambda sql, row, *parents: _addon_sql("a.slug", row)),
    per_agent=resolved(lambda sql, row, *parents: _addon_sql(f"a.unit = '{AddonUnit.PER_AGENT.name}'", row)),
    unit_price=resolved(Nested("Money", lambda sql, row, subscription, *parents: (
        _addon_sql(_unit_price_sql(subscription), row), _addon_sql("a.currency", row)))),
    amount=resolved(Nested("Money", lambda sql, row, subscription, *parents: (
        _addon_amount_sql(row, subscription), _addon_sql("a.currency", row)))),
    attached_at=renamed("created_at"),
)


# SpendingCap: the subscription's plan's row under the subscription's (``spending_cap_of``).

def _minimum_cap_sql(plan: str, subscription: str) -> str:
    """``PlanPrice.seats`` of the version the subscription pays (an older one's frozen per-agent price): the
    per-agent price x the billable agents beyond the included ones x the months of the billing period."""
    per_agent = (f"CASE WHEN {subscription}.plan_version < {plan}.version THEN (SELECT v.per_agent_price FROM "
                 f"plan_versions AS v WHERE v.plan_id = {plan}.id AND v.number = {subscription}.plan_version) "
                 f"ELSE {plan}.per_agent_price END")
    agents = agents_sql(subscription)
    beyond = f"CASE WHEN {agents} > {plan}.included_agents THEN {agents} - {plan}.included_agents ELSE 0 END"
    months = _by_period(subscription, str(DomainBillingPeriod.MONTHLY.months), str(DomainBillingPeriod.ANNUAL.months))
    return f"(({per_agent}) * ({beyond}) * ({months}))"


def _cap_too_low_sql(sql: Any, plan: str, subscription: str, *parents: str) -> str:
    """``cap_too_low``: a cap, below the minimum."""
    cap = f"{subscription}.spending_cap"
    return f"({cap} IS NOT NULL AND {cap} < {_minimum_cap_sql(plan, subscription)})"


columns(
    SpendingCap, PlanRow,
    current_cap=resolved(Nested("Money", lambda sql, plan, subscription, *parents: (
        f"{subscription}.spending_cap", f"{plan}.currency"), nullable=True)),
    minimum_required_cap=resolved(Nested("Money", lambda sql, plan, subscription, *parents: (
        _minimum_cap_sql(plan, subscription), f"{plan}.currency"))),
    require_increase=resolved(_cap_too_low_sql),
    current_agent_count=resolved(lambda sql, plan, subscription, *parents: agents_sql(subscription)),
)

# AppliedCoupon: a coupon's row under its subscription's (the parent, whose column periodsRemaining is).
columns(
    AppliedCoupon, CouponRow, **COUPON_FORMS,
    duration=computed(lambda row, *parents: row.duration.value, lambda sql, row, *parents: f"{row}.duration"),
    periods_remaining=computed(lambda row, subscription, *parents: subscription.coupon_periods_remaining,
                               lambda sql, row, subscription, *parents: f"{subscription}.coupon_periods_remaining"),
)
# PendingChange: the subscription's own row (null unless a plan or period change is pending).
columns(
    PendingChange, SubscriptionRow,
    plan=resolved(Parent("plans", None, where=lambda plan, row: (
        f"{plan}.id = coalesce({row}.pending_plan_id, {row}.plan_id)"))),
    billing_period=computed(lambda row, *parents: row.pending_billing_period or row.billing_period,
                            lambda sql, row, *parents: f"coalesce({row}.pending_billing_period, {row}.billing_period)"),
    effective_at=renamed("current_period_end"),
)


@strawberry.type
class SubscriptionConnection(relay.Connection[SubscriptionType]):
    """Subscriptions, newest first, paged."""
