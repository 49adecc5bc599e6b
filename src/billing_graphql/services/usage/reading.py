"""Reading usage: per organization and metric, used against the plan's limit, in a fixed number
of statements whatever the number of organizations and metrics.

Counter keys: a metric's aggregate for an organization and billing month (``domain.aggregation``)
is the ``usage_counters`` row keyed by the ``YYYY-MM`` of the month its billing month starts in
(``domain.usage.billing_month``: anchored on the live subscription's ``period_anchor``, the
calendar month without one). A GAUGE (LATEST) also has one row keyed ``current``: its value now,
which ``usage`` and limits read. Nothing here reads ``usage_events``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import String, bindparam, case, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Metric,
    MetricKind,
    Organization,
    Plan,
    PlanCharge,
    PlanFeature,
    PlanLimit,
    Subscription,
    UsageCounter,
    UsageUniqueValue,
)
from billing_graphql.db.prepared import Compiled
from billing_graphql.domain.aggregation import Aggregation
from billing_graphql.domain.charges import ChargeModel
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.money import Money
from billing_graphql.domain.overage import usage_month_keys
from billing_graphql.domain.periods import BillingPeriod, Period, add_months
from billing_graphql.domain.proration import billed_agents
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.domain.usage import GAUGE_KEY, LimitUse, month_key, usage_period
from billing_graphql.services.catalog.charges import charge_of
from billing_graphql.services.catalog.metrics import metrics_statement
from billing_graphql.services.catalog.plans import plan_order
from billing_graphql.services.usage.amounts import AmountsOf, metric_amounts, usage_amounts
from billing_graphql.services.usage.ingest import live_join

SEATS_METRIC = "agents"


@dataclass(frozen=True, slots=True)
class OrganizationPlan:
    organization: Organization
    subscription: Subscription | None
    plan: Plan | None

    def month(self, now: datetime, month: datetime | None = None) -> Period:
        """The billing month in force at ``now``, or the one starting in the calendar month
        ``month`` (calendar months without a subscription): ``domain.usage.usage_period``."""
        return usage_period(self.subscription.period_anchor if self.subscription else None, now, month)


@dataclass(frozen=True, slots=True)
class MetricUse:
    metric: Metric
    use: LimitUse
    limited: bool  # the plan lists the metric (its limit may still be null: unlimited)
    recorded: bool = True  # a value was recorded (else ``use.used`` is 0 for want of one)


# The usage pages' statements, made once: building one (and its cache key) on every call cost more CPU than
# running it. Each takes its lists as expanding parameters.
_ORGANIZATION_PLANS = (
    select(Organization, Subscription, Plan)
    .outerjoin(Subscription, live_join())
    .outerjoin(Plan, Plan.id == Subscription.plan_id)
    .where(Organization.id.in_(bindparam("ids", expanding=True)))
)
_METRICS = metrics_statement()
_PLAN_LIMITS = (select(PlanLimit.plan_id, PlanLimit.metric_id, PlanLimit.limit_value)
                .where(PlanLimit.plan_id.in_(bindparam("plan_ids", expanding=True))))
_COUNTERS = (
    select(UsageCounter.organization_id, UsageCounter.metric_id, UsageCounter.period_key, UsageCounter.value)
    .where(UsageCounter.organization_id.in_(bindparam("organization_ids", expanding=True)),
           UsageCounter.period_key.in_(bindparam("keys", expanding=True)))
)


async def organization_plans(session: AsyncSession, organization_ids: Iterable[uuid.UUID]) -> list[OrganizationPlan]:
    """Organizations with their live subscription and its plan, in the order asked (missing ones left out)."""
    ids = list(dict.fromkeys(organization_ids))
    if not ids:
        return []
    rows = (await session.execute(_ORGANIZATION_PLANS, {"ids": ids})).all()
    found = {organization.id: OrganizationPlan(organization, subscription, plan)
             for organization, subscription, plan in rows}
    return [found[organization_id] for organization_id in ids if organization_id in found]


async def organization_plan(session: AsyncSession, organization_id: uuid.UUID) -> OrganizationPlan:
    found = await organization_plans(session, [organization_id])
    if not found:
        raise not_found("Organization", "organizationId")
    return found[0]


async def metric_uses(
    session: AsyncSession, months: dict[uuid.UUID, tuple[uuid.UUID | None, str]]
) -> dict[uuid.UUID, list[MetricUse]]:
    """Per organization (mapped to its plan id and the month key to read), each metric the plan
    limits or that has a value: used, limit. Three statements for any number of organizations."""
    if not months:
        return {}
    metrics = {metric.id: metric for metric in (await session.scalars(_METRICS)).all()}
    plan_ids = {plan_id for plan_id, _ in months.values() if plan_id is not None}
    limits: dict[uuid.UUID, dict[uuid.UUID, int | None]] = {}
    if plan_ids:
        for plan_id, metric_id, value in (await session.execute(_PLAN_LIMITS, {"plan_ids": list(plan_ids)})).all():
            limits.setdefault(plan_id, {})[metric_id] = value
    keys = {key for _, key in months.values()} | {GAUGE_KEY}
    values: dict[tuple[uuid.UUID, uuid.UUID, str], int] = {
        (organization_id, metric_id, key): value
        for organization_id, metric_id, key, value in (await session.execute(
            _COUNTERS, {"organization_ids": list(months), "keys": list(keys)})).all()
    }
    result: dict[uuid.UUID, list[MetricUse]] = {}
    for organization_id, (plan_id, key) in months.items():
        plan_limits = limits.get(plan_id, {}) if plan_id is not None else {}
        uses: list[MetricUse] = []
        for metric in metrics.values():
            value = values.get((organization_id, metric.id, GAUGE_KEY if metric.kind is MetricKind.GAUGE else key))
            limited = metric.id in plan_limits
            if limited or value is not None:
                uses.append(MetricUse(metric, LimitUse(value or 0, plan_limits.get(metric.id)), limited,
                                      value is not None))
        result[organization_id] = uses
    return result


@dataclass(frozen=True, slots=True)
class UsageNow:
    organization: OrganizationPlan
    month: Period
    metrics: list[MetricUse]
    amounts: dict[uuid.UUID, int] = field(default_factory=dict)  # charged metrics: amount so far (services.usage.amounts)

    def used(self, code: str) -> int:
        return next((use.use.used for use in self.metrics if use.metric.code == code), 0)

    def amount_of(self, metric_id: uuid.UUID) -> Decimal | None:
        """A charged metric's amount so far, in major units of the plan's currency (None: not charged)."""
        plan = self.organization.plan
        minor = self.amounts.get(metric_id)
        return None if minor is None or plan is None else Money(minor, plan.currency).amount

    @property
    def usage_month(self) -> str:
        return month_key(self.month.start)

    @property
    def agent_count(self) -> int:
        """The billable seat count (``domain.proration.billed_agents``: the ``agents`` gauge, else
        the live subscription's ``agent_count``), the number the subscription, the next renewal and
        MRR read; 0 with neither."""
        use = next((use for use in self.metrics if use.metric.code == SEATS_METRIC and use.recorded), None)
        gauge = use.use.used if use is not None else None
        subscription = self.organization.subscription
        return billed_agents(gauge, subscription.agent_count) if subscription is not None else gauge or 0


async def usage_now(session: AsyncSession, organization_id: uuid.UUID, now: datetime, *,
                    with_amounts: bool = True) -> UsageNow:
    found = await organization_plan(session, organization_id)
    month = found.month(now)
    uses = await metric_uses(session, {organization_id: (found.plan.id if found.plan else None, month_key(month.start))})
    if not with_amounts:
        return UsageNow(found, month, uses[organization_id])
    amounts = await usage_amounts(session, [amounts_of(found, month, uses[organization_id])])
    return UsageNow(found, month, uses[organization_id], amounts[organization_id])


def amounts_of(found: OrganizationPlan, month: Period, uses: list[MetricUse]) -> AmountsOf:
    return AmountsOf(found.organization.id, found.subscription, found.plan, month,
                     {use.metric.id: use.use.used for use in uses})


@dataclass(frozen=True, slots=True)
class Entitlements:
    plan: Plan | None
    subscription: Subscription | None
    features: list[tuple[str, bool]]
    limits: list[MetricUse]
    amounts: dict[uuid.UUID, int] = field(default_factory=dict)  # charged metrics: amount so far


async def entitlements(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> Entitlements:
    """The live plan's features and limits; without a live subscription the free tier (an active
    plan priced 0), else every known feature off and no limits."""
    found = await organization_plan(session, organization_id)
    plan = found.plan
    if plan is None:
        plan = await session.scalar(
            select(Plan).where(Plan.is_active.is_(True), Plan.base_price_monthly == 0)
            .order_by(Plan.sort_order, Plan.name).limit(1)
        )
    if plan is None:
        keys = (await session.scalars(select(PlanFeature.key).distinct().order_by(PlanFeature.key))).all()
        return Entitlements(None, None, [(key, False) for key in keys], [])
    features = (await session.execute(
        select(PlanFeature.key, PlanFeature.enabled).where(PlanFeature.plan_id == plan.id).order_by(PlanFeature.key)
    )).all()
    month = found.month(now)
    uses = await metric_uses(session, {organization_id: (plan.id, month_key(month.start))})
    limits = [use for use in uses[organization_id] if use.limited]
    amounts = await usage_amounts(session, [amounts_of(found, month, uses[organization_id])])
    return Entitlements(plan, found.subscription, [(key, enabled) for key, enabled in features], limits,
                        amounts[organization_id])


# The free tier ``entitlements`` falls back to without a live plan: the first active plan priced 0.
_FREE_TIER = (select(Plan.id, Plan.slug).where(Plan.is_active.is_(True), Plan.base_price_monthly == 0)
              .order_by(Plan.sort_order, Plan.name).limit(1).subquery("free_tier"))
_USAGE_BASIS = Compiled(
    select(Subscription.status, Subscription.period_anchor, Subscription.agent_count,
           Subscription.trial_ends_at, Subscription.billing_period, Subscription.plan_version,
           Subscription.spending_cap, Subscription.usage_billed, Plan.id, Plan.slug, _FREE_TIER.c.id,
           _FREE_TIER.c.slug)
    .select_from(Organization)
    .outerjoin(Subscription, live_join())
    .outerjoin(Plan, Plan.id == Subscription.plan_id)
    .outerjoin(_FREE_TIER, true())
    .where(Organization.id == bindparam("organization_id"))
)


@dataclass(frozen=True, slots=True)
class UsageBasis:
    """What ``usage``, ``entitlements`` and ``planLimits`` read first, as values, for the SQL tier
    (``graphql.usage.types``), which writes the metrics, limits and features from them: the live subscription's
    status, stored ``agent_count``, trial end, billing period, plan version, spending cap and what a plan change's
    invoice billed of its usage (None without one), its plan, the free tier, and the billing month in force
    (``OrganizationPlan.month``)."""

    organization_id: uuid.UUID
    status: SubscriptionStatus | None
    agent_count: int | None
    trial_ends_at: datetime | None
    billing_period: BillingPeriod | None
    plan_version: int | None
    spending_cap: int | None
    usage_billed: dict | None
    plan_id: uuid.UUID | None
    plan_slug: str | None
    free_plan_id: uuid.UUID | None
    free_plan_slug: str | None
    month: Period

    @property
    def month_key(self) -> str:
        return month_key(self.month.start)

    @property
    def entitlement_plan(self) -> tuple[uuid.UUID | None, str | None]:
        """The plan ``entitlements`` shows (id, slug): the live one, else the free tier (None: neither)."""
        if self.plan_id is not None:
            return self.plan_id, self.plan_slug
        return self.free_plan_id, self.free_plan_slug


async def usage_basis(db: Database, organization_id: uuid.UUID, now: datetime) -> UsageBasis | None:
    """The usage pages' first reads (the organization's live subscription and plan, the free tier) in one
    statement on the driver's connection; None: no such organization."""
    rows = await _USAGE_BASIS.on(db.engine.dialect).values(db, {"organization_id": organization_id})
    if not rows:
        return None
    ((status, anchor, agent_count, trial_end, period, version, cap, billed, plan_id, slug, free_id,
      free_slug),) = rows
    return UsageBasis(organization_id, status, agent_count, trial_end, period, version, cap, billed, plan_id,
                      slug, free_id, free_slug, usage_period(anchor if status is not None else None, now))


class ChargedUse(NamedTuple):
    """A charge of the plan version the live subscription pays (its columns, as ``charge_of`` reads them), its
    metric's kind, and the metric's value the usage pages show (``metric_uses``: None when none is recorded)."""

    metric_id: uuid.UUID
    kind: MetricKind
    model: ChargeModel
    included_units: int | None
    unit_amount: Decimal
    package_size: int | None
    tiers: list[dict[str, Any]] | None
    value: int | None


# The charges of one plan version with the organization's value of each metric in the billing month (a GAUGE's
# current one), as ``metric_uses`` reads them.
_CHARGED_USES = Compiled(
    select(PlanCharge.metric_id, Metric.kind, PlanCharge.model, PlanCharge.included_units, PlanCharge.unit_amount,
           PlanCharge.package_size, PlanCharge.tiers, UsageCounter.value)
    .join(Metric, Metric.id == PlanCharge.metric_id)
    .outerjoin(UsageCounter, (UsageCounter.organization_id == bindparam("organization_id"))
               & (UsageCounter.metric_id == PlanCharge.metric_id)
               & (UsageCounter.period_key == case((Metric.kind == MetricKind.GAUGE, GAUGE_KEY),
                                                  else_=bindparam("month_key", type_=String))))
    .where(PlanCharge.plan_id == bindparam("plan_id"), PlanCharge.version == bindparam("version"))
)


async def basis_amounts(db: Database, basis: UsageBasis) -> dict[uuid.UUID, int] | None:
    """``usage_amounts`` of the basis's organization (its charged metrics' amounts, minor units of the live plan's
    currency), read in one statement on the driver's connection; None without a live subscription (no statement)."""
    if basis.status is None or basis.plan_id is None or basis.plan_version is None:
        return None
    rows = [ChargedUse(*row) for row in await _CHARGED_USES.on(db.engine.dialect).values(db, {
        "organization_id": basis.organization_id, "month_key": basis.month_key, "plan_id": basis.plan_id,
        "version": basis.plan_version})]
    return _priced(rows, basis.usage_billed, basis.month)


def _priced(uses: Sequence[ChargedUse], usage_billed: dict | None, month: Period) -> dict[uuid.UUID, int]:
    """``metric_amounts`` of charged uses (a metric with no value: 0)."""
    return metric_amounts(((use.metric_id, use.kind, charge_of(use)) for use in uses),
                          {use.metric_id: use.value or 0 for use in uses}, usage_billed, month)


async def organization_amounts(session: AsyncSession, items: Sequence[tuple[OrganizationPlan, Period]]
                               ) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """``usage_amounts`` of several organizations, each in its billing month (their charged metrics' amounts, minor
    units of the live plan's currency), read in one statement: the charges of the plan version each live subscription
    pays with the organization's value of each metric, as ``metric_uses`` reads it (the month's counter, a GAUGE's
    current one). An organization without a live subscription has none (no statement for none)."""
    priced = {found.organization.id: (found, month_key(period.start), period) for found, period in items
              if found.subscription is not None and found.plan is not None}
    if not priced:
        return {}
    keys = {key for _, key, _ in priced.values()} | {GAUGE_KEY}
    rows = (await session.execute(
        select(Subscription.organization_id, PlanCharge.metric_id, Metric.kind, PlanCharge.model,
               PlanCharge.included_units, PlanCharge.unit_amount, PlanCharge.package_size, PlanCharge.tiers,
               UsageCounter.period_key, UsageCounter.value)
        .join(PlanCharge, (PlanCharge.plan_id == Subscription.plan_id)
              & (PlanCharge.version == Subscription.plan_version))
        .join(Metric, Metric.id == PlanCharge.metric_id)
        .outerjoin(UsageCounter, (UsageCounter.organization_id == Subscription.organization_id)
                   & (UsageCounter.metric_id == PlanCharge.metric_id) & UsageCounter.period_key.in_(keys))
        .where(Subscription.id.in_([found.subscription.id for found, _, _ in priced.values()]))
    )).all()
    charged: dict[uuid.UUID, dict[uuid.UUID, ChargedUse]] = {organization_id: {} for organization_id in priced}
    for organization_id, *charge, key, value in rows:
        use = ChargedUse(*charge, None)
        wanted = GAUGE_KEY if use.kind is MetricKind.GAUGE else priced[organization_id][1]
        known = charged[organization_id].get(use.metric_id)
        if known is None or key == wanted:  # a counter of another month counts as none
            charged[organization_id][use.metric_id] = use._replace(value=value if key == wanted else None)
    return {organization_id: _priced(list(uses.values()), priced[organization_id][0].subscription.usage_billed,
                                     priced[organization_id][2])
            for organization_id, uses in charged.items()}


async def usage_in_period(
    session: AsyncSession, organization_id: uuid.UUID, metric_code: str, period_start: datetime,
    period_end: datetime | None = None,
) -> int:
    """COUNTER usage of ``metric_code`` for an organization over the billing months of the period
    [``period_start``, ``period_end``) (default: the one billing month starting at ``period_start``;
    pass the period's end for an annual period): the keys of ``domain.overage.usage_month_keys``,
    the same the billing run bills overage on. 0 when nothing was recorded."""
    keys = usage_month_keys(Period(period_start, period_end or add_months(period_start, 1)))
    total = await session.scalar(
        select(func.coalesce(func.sum(UsageCounter.value), 0))
        .join(Metric, Metric.id == UsageCounter.metric_id)
        .where(UsageCounter.organization_id == organization_id, Metric.code == metric_code,
               Metric.kind == MetricKind.COUNTER, UsageCounter.period_key.in_(keys))
    )
    return int(total or 0)


async def period_quantities(
    session: AsyncSession, organization_id: uuid.UUID, metric_ids: Iterable[uuid.UUID], period: Period
) -> dict[uuid.UUID, int]:
    """The quantity of each metric of ``metric_ids`` for an organization over the billing period
    ``period``, as its aggregation defines it; the number usage charges price.

    The period's billing months are ``domain.overage.usage_month_keys(period)`` (one for a monthly
    period, twelve for an annual one, none for a trial shorter than a month; the current period
    gives the quantity so far). Per aggregation, over those months' ``usage_counters`` rows:
    COUNT and SUM add them up; MAX takes the largest; UNIQUE_COUNT is the month's distinct count,
    or over several months the number of distinct values across them (``usage_unique_values``);
    LATEST is the value of the last month with one at or before the period's last month (a gauge
    carries over months without events), else the ``current`` row observed before the period's
    end. A metric without usage is 0; every id asked for is in the result (an unknown id too, as 0).

    One statement (two when a UNIQUE_COUNT metric spans several months), whatever the number of
    metrics; never reads ``usage_events``. Pass the session of the caller's transaction.
    """
    ids = list(dict.fromkeys(metric_ids))
    keys = usage_month_keys(period)
    if not ids or not keys:
        return {metric_id: 0 for metric_id in ids}
    rows = (await session.execute(counter_rows(organization_id, ids, keys[-1]))).all()
    result, spanning = fold_counters(ids, period, rows)
    if spanning:
        with_distinct_counts(result, spanning, (await session.execute(
            select(UsageUniqueValue.metric_id, func.count(func.distinct(UsageUniqueValue.value)))
            .where(UsageUniqueValue.organization_id == organization_id,
                   UsageUniqueValue.metric_id.in_(set(spanning)), UsageUniqueValue.period_key.in_(keys))
            .group_by(UsageUniqueValue.metric_id)
        )).all())
    return result


def counter_rows(organization_id: Any, metric_ids: Any, last_key: Any) -> Any:
    """The counters ``period_quantities`` folds (``fold_counters``): the organization's of ``metric_ids`` (ids, or
    a sub-select of them) of billing months up to ``last_key`` (the period's last), and the ``current`` ones."""
    return (select(UsageCounter.metric_id, Metric.aggregation, UsageCounter.period_key, UsageCounter.value,
                   UsageCounter.updated_at)
            .join(Metric, Metric.id == UsageCounter.metric_id)
            .where(UsageCounter.organization_id == organization_id, UsageCounter.metric_id.in_(metric_ids),
                   (UsageCounter.period_key <= last_key) | (UsageCounter.period_key == GAUGE_KEY)))


def fold_counters(ids: Sequence[uuid.UUID], period: Period, rows: Iterable[Sequence[Any]]
                  ) -> tuple[dict[uuid.UUID, int], list[uuid.UUID]]:
    """``period_quantities`` of ``counter_rows``' rows (metric id, aggregation, key, value, updated at), every one of
    ``ids`` in the result (0 without usage; all 0 for a period of no billing month), and the UNIQUE_COUNT metrics
    whose quantity is their distinct values across the period's months (``with_distinct_counts``)."""
    result = {metric_id: 0 for metric_id in ids}
    keys = usage_month_keys(period)
    if not keys:
        return result, []
    in_period = set(keys)
    latest: dict[uuid.UUID, tuple[str, int]] = {}
    current: dict[uuid.UUID, int] = {}
    spanning: list[uuid.UUID] = []
    for metric_id, aggregation, key, value, observed in rows:
        if aggregation is Aggregation.LATEST:
            if key == GAUGE_KEY:
                if observed < period.end:
                    current[metric_id] = value
            elif metric_id not in latest or key > latest[metric_id][0]:
                latest[metric_id] = (key, value)
        elif key not in in_period:
            continue
        elif aggregation is Aggregation.MAX:
            result[metric_id] = max(result[metric_id], value)
        elif aggregation is Aggregation.UNIQUE_COUNT and len(keys) > 1:
            spanning.append(metric_id)
        else:  # COUNT, SUM, UNIQUE_COUNT of one month
            result[metric_id] += value
    for metric_id in {*latest, *current}:
        result[metric_id] = latest[metric_id][1] if metric_id in latest else current[metric_id]
    return result, spanning


def with_distinct_counts(result: dict[uuid.UUID, int], spanning: Sequence[uuid.UUID],
                         counts: Iterable[tuple[uuid.UUID, int]]) -> None:
    """The quantities of the ``spanning`` metrics: their distinct values across the period's months (``counts``:
    metric id and number of distinct values, of the metrics that have any)."""
    for metric_id, count in counts:
        if metric_id in spanning:
            result[metric_id] = int(count)


@dataclass(frozen=True, slots=True)
class PlanLimitsView:
    """Seed 004's plan-limits view: the current plan and trial, every active plan, current usage."""

    usage: UsageNow
    plans: list[Plan]


async def plan_limits_view(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> PlanLimitsView:
    usage = await usage_now(session, organization_id, now, with_amounts=False)  # the view shows no amounts
    plans = (await session.scalars(  # the plans offered to it: those in its currency
        select(Plan).join(Organization, Organization.currency == Plan.currency)
        .where(Organization.id == organization_id, Plan.is_active.is_(True)).order_by(*plan_order())
    )).all()
    return PlanLimitsView(usage=usage, plans=list(plans))
