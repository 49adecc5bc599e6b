"""Usage types: values known at construction are plain fields (no resolvers)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from collections.abc import Callable
from typing import Any
from decimal import Decimal

import strawberry
from sqlalchemy import BigInteger, Boolean, Integer, String, Uuid
from strawberry import relay

from billing_graphql.db.models import Metric as MetricRow
from billing_graphql.db.models import MetricKind as DomainMetricKind
from billing_graphql.db.models import Organization as OrganizationRow
from billing_graphql.db.models import Plan as PlanRow
from billing_graphql.db.models import PlanLimit as PlanLimitRow
from billing_graphql.domain.numbers import INT64_MAX
from billing_graphql.domain.status import SubscriptionStatus as DomainSubscriptionStatus
from billing_graphql.domain.status import trial_expired
from billing_graphql.db.types import UTCDateTime
from billing_graphql.domain.usage import GAUGE_KEY
from billing_graphql.graphql.catalog.plan_types import Metric, PlanFeature, PlanLimit, PlanType
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.columns import (
    Children, Form, GenericPathAnswers, Nested, Parent, Statement, columns, global_id, renamed, resolved, same_row,
    typed_row, values_row, values_rows,
)
from billing_graphql.graphql.common import Money
from billing_graphql.graphql.scalars import BigInt
from billing_graphql.graphql.subscriptions.types import SpendingCap, SubscriptionStatus, agents_sql, spending_cap_of
from billing_graphql.services.usage.partners import Snapshot, SnapshotBasis
from billing_graphql.services.usage.reading import Entitlements as EntitlementsValue
from billing_graphql.services.usage.reading import MetricUse, UsageNow, plan_limits_view
from billing_graphql.services.usage.reading import PlanLimitsView as PlanLimitsValue


AMOUNT = ("What the metric's usage costs so far: the quantity shown priced by the charge of the plan version the "
          "subscription pays (a month's included units, rounded once); null when the plan has no charge on it.")


def _currency(plan) -> str | None:
    return plan.currency if plan is not None else None


@strawberry.type(description="A metric's use in the current billing month; `limit` null is unlimited.")
class MetricUsage:
    metric: Metric
    used: BigInt
    limit: BigInt | None
    remaining: BigInt | None = strawberry.field(description="Null when unlimited.")
    overage: BigInt
    percent_used: Decimal | None = strawberry.field(description="Of the limit, two decimals; null when unlimited.")
    amount: Money | None = strawberry.field(description=AMOUNT)

    @classmethod
    def of(cls, item: MetricUse, amounts: dict, currency: str | None) -> MetricUsage:
        use = item.use
        return cls(metric=Metric.from_row(item.metric), used=use.used, limit=use.limit, remaining=use.remaining,
                   overage=use.overage, percent_used=use.percent_used,
                   amount=Money.maybe(amounts.get(item.metric.id), currency))


def _limits(uses: list[MetricUse]) -> list[PlanLimit]:
    return [PlanLimit(metric=Metric.from_row(use.metric), limit=use.use.limit) for use in uses if use.limited]


# Usage's fields that are a metric's value now (0 without one): field -> metric code.
COUNTED = {"contact_count": "contacts", "messages_this_month": "messages", "active_integrations": "integrations"}


@strawberry.type(description="An organization's usage in its current billing month (the calendar month "
                             "without a subscription). GAUGEs are current counts; COUNTERs are this month's sums.")
class Usage:
    organization_id: strawberry.ID
    agent_count: int
    contact_count: int
    messages_this_month: BigInt
    active_integrations: int
    usage_month: str = strawberry.field(description="YYYY-MM of the month the billing month starts in.")
    period_start: datetime
    period_end: datetime
    limits: list[PlanLimit] = strawberry.field(description="The plan's limits; null is unlimited.")
    metrics: list[MetricUsage] = strawberry.field(description="Every metric the plan limits or that has a value.")

    @classmethod
    def of(cls, usage: UsageNow) -> Usage:
        return cls(
            organization_id=strawberry.ID(relay.to_base64("Organization", usage.organization.organization.id)),
            agent_count=usage.agent_count,
            **{name: usage.used(code) for name, code in COUNTED.items()},
            usage_month=usage.usage_month,
            period_start=usage.month.start,
            period_end=usage.month.end,
            limits=_limits(usage.metrics),
            metrics=[MetricUsage.of(item, usage.amounts, _currency(usage.organization.plan)) for item in usage.metrics],
        )


@strawberry.type(description="A limit and its use now.")
class EntitlementLimit:
    metric: Metric
    used: BigInt
    limit: BigInt | None
    exceeded: bool
    amount: Money | None = strawberry.field(description=AMOUNT)


@strawberry.type(description="What an organization may use now: its plan's feature flags and limits, and "
                             "the subscription's status (UNPAID: restrict access).")
class Entitlements:
    plan_slug: str | None = strawberry.field(description="The live plan's, the free tier's, or null.")
    status: SubscriptionStatus | None = strawberry.field(description="Null without a live subscription.")
    features: list[PlanFeature]
    limits: list[EntitlementLimit]

    @classmethod
    def of(cls, value: EntitlementsValue) -> Entitlements:
        status: DomainSubscriptionStatus | None = value.subscription.status if value.subscription else None
        return cls(
            plan_slug=value.plan.slug if value.plan else None,
            status=status,
            features=[PlanFeature(key=key, enabled=enabled) for key, enabled in value.features],
            limits=[EntitlementLimit(metric=Metric.from_row(use.metric), used=use.use.used, limit=use.use.limit,
                                     exceeded=use.use.exceeded,
                                     amount=Money.maybe(value.amounts.get(use.metric.id), _currency(value.plan)))
                    for use in value.limits],
        )


# The usage pages on the SQL tier (``graphql.sql_roots``: ``usage``, ``entitlements``). Each row holds the values
# of ``services.usage.reading.usage_basis`` (the plan, the billing month in force: found by the domain's rules in
# Python) and, where an ``amount`` is selected, the charged metrics' amounts (priced in Python by
# ``services.usage.amounts``), and the database writes the metrics, limits and features with their use from it.
# The Python forms are ``Usage.of`` and ``Entitlements.of`` over the services' ``usage_now`` and ``entitlements``;
# the differential tests hold the two to the same bytes.

def entitlements_row(organization_id: Any, plan_id: Any, plan_slug: Any, status: Any, month_key: Any,
                     amounts: Any) -> Any:
    """``entitlements``' row: the plan shown (live, else the free tier), the live subscription's status (the
    enum's name), the billing month's key, the amounts so far (``amounts_text``)."""
    return values_row(("organization_id", organization_id, Uuid), ("plan_id", plan_id, Uuid),
                      ("plan_slug", plan_slug, String), ("status", status, String), ("month_key", month_key, String),
                      ("amounts", amounts, String))


# The columns of a row of one organization's billing month (``usage``'s, a snapshot's): the organization, its live
# plan, the month (key, first and next month's first instant), the amounts so far (``amounts_text``).
MONTH_COLUMNS = (("organization_id", Uuid), ("plan_id", Uuid), ("month_key", String),
                 ("period_start", UTCDateTime()), ("period_end", UTCDateTime()), ("amounts", String))
# Their forms where the row's type shows the month's bounds.
MONTH_BOUNDS = dict(period_start=resolved(lambda sql, row, *parents: sql.datetime(f"{row}.period_start")),
                    period_end=resolved(lambda sql, row, *parents: sql.datetime(f"{row}.period_end")))


def usage_row(organization_id: Any, plan_id: Any, agent_count: Any, month_key: Any, period_start: Any,
              period_end: Any, amounts: Any) -> Any:
    """``usage``'s row: ``MONTH_COLUMNS``, and the live subscription's stored ``agent_count``."""
    return typed_row(MONTH_COLUMNS, (organization_id, plan_id, month_key, period_start, period_end, amounts),
                     ("agent_count", agent_count, Integer))


def amounts_text(amounts: dict[uuid.UUID, int] | None) -> str | None:
    """The usage pages' row's ``amounts``: each charged metric's amount so far (``services.usage.amounts``, minor
    units of the live plan's currency, found in Python by the domain's rules) as a JSON object by the metric id's
    text (as ``uuid_text`` writes it in SQL); None for none (no live subscription, or no amount selected). An
    amount past BIGINT, which SQL's Money cannot hold, leaves the request to the generic path."""
    if amounts is None:
        return None
    if any(abs(amount) > INT64_MAX for amount in amounts.values()):
        raise GenericPathAnswers("an amount past BIGINT")
    return json.dumps({str(metric_id): amount for metric_id, amount in amounts.items()}, separators=(",", ":"))


def _amount(metric_id: Callable[[str], str]) -> Form:
    """``amount``'s SQL form: the page row's ``amounts`` at the metric's id (``metric_id`` of the row's alias), as
    Money in the plan's currency; null without one (a metric without a charge, no live subscription)."""
    return resolved(Nested("Money", lambda sql, row, page, *parents: (
        sql.json_integer(f"{page}.amounts", sql.uuid_text(metric_id(row))),
        f"(SELECT p.currency FROM plans AS p WHERE p.id = {page}.plan_id)"), nullable=True))


def _counter(page: str, metric_id: str, kind: str) -> str:
    """``reading.metric_uses``' value of a metric for the page's organization: its counter for the billing month,
    a GAUGE's current one (NULL: none recorded)."""
    return (f"(SELECT c.value FROM usage_counters AS c WHERE c.organization_id = {page}.organization_id AND "
            f"c.metric_id = {metric_id} AND c.period_key = CASE WHEN {kind} = '{DomainMetricKind.GAUGE.name}' "
            f"THEN '{GAUGE_KEY}' ELSE {page}.month_key END)")


def _used_of(code: str, page: str) -> str:
    """``UsageNow.used(code)``'s value, NULL when none is recorded."""
    return _counter(page, f"(SELECT id FROM metrics WHERE code = '{code}')",
                    f"(SELECT kind FROM metrics WHERE code = '{code}')")


def _limit_used(sql: Any, row: str, page: str, *parents: str) -> str:
    """An entitlement's use: its limit's metric's value, else 0."""
    return f"coalesce({_counter(page, f'{row}.metric_id', f'(SELECT kind FROM metrics WHERE id = {row}.metric_id)')}, 0)"


def _metric_used(sql: Any, row: str, page: str, *parents: str) -> str:
    return f"coalesce({_counter(page, f'{row}.id', f'{row}.kind')}, 0)"


def _metric_limit(sql: Any, row: str, page: str, *parents: str) -> str:
    return f"(SELECT l.limit_value FROM plan_limits AS l WHERE l.plan_id = {page}.plan_id AND l.metric_id = {row}.id)"


def _agent_count(sql: Any, row: str, *parents: str) -> str:
    """``UsageNow.agent_count``: the billable agents (``subscriptions.types``' form), 0 without a subscription."""
    return f"coalesce({agents_sql(row)}, 0)"


def _shown(alias: str, page: str) -> str:
    """``reading.metric_uses``: a metric the plan limits or that has a value."""
    return (f"(EXISTS (SELECT 1 FROM plan_limits AS l WHERE l.plan_id = {page}.plan_id AND l.metric_id = {alias}.id) "
            f"OR {_counter(page, f'{alias}.id', f'{alias}.kind')} IS NOT NULL)")


def _unless_unlimited(sql: Any, row: str, parents: tuple[str, ...], unlimited: str, rule: Callable[[str, str], str]) -> str:
    """``LimitUse``'s ``remaining`` and ``overage``: ``unlimited`` without a limit, else ``rule(used, limit)``."""
    limit = _metric_limit(sql, row, *parents)
    return f"CASE WHEN {limit} IS NULL THEN {unlimited} ELSE {rule(_metric_used(sql, row, *parents), limit)} END"


_BY_CODE = lambda alias: f"(SELECT code FROM metrics WHERE metrics.id = {alias}.metric_id)"  # noqa: E731
_OF_PLAN = lambda alias, row: f"{alias}.plan_id = {row}.plan_id"  # noqa: E731
_THE_PLAN = lambda plan, row: f"{plan}.id = {row}.plan_id"  # noqa: E731

# ``LimitUse``'s rules over the SQL forms of ``used`` and ``limit``.
columns(
    EntitlementLimit, PlanLimitRow, metric=resolved(Parent("metrics", "metric_id")), limit=renamed("limit_value"),
    used=resolved(_limit_used),
    exceeded=resolved(lambda sql, row, *parents: (
        f"({row}.limit_value IS NOT NULL AND {_limit_used(sql, row, *parents)} > {row}.limit_value)")),
    amount=_amount(lambda row: f"{row}.metric_id"),
)
columns(
    Entitlements, OrganizationRow,
    plan_slug=resolved(lambda sql, row, *parents: f"{row}.plan_slug"),
    status=resolved(lambda sql, row, *parents: f"{row}.status"),
    features=resolved(Children("plan_features", None, "key", where=_OF_PLAN)),
    limits=resolved(Children("plan_limits", None, _BY_CODE, where=_OF_PLAN)),
)
# A metric's use below a page row (``usage``'s and a snapshot's metrics, rows of ``metrics``): its forms.
METRIC_USE = dict(
    metric=resolved(Parent("metrics", None, where=lambda own, row: f"{own}.id = {row}.id")),
    used=resolved(_metric_used), limit=resolved(_metric_limit),
    overage=resolved(lambda sql, row, *parents: _unless_unlimited(
        sql, row, parents, "0", lambda used, limit: sql.greatest(f"{used} - {limit}", "0"))),
    amount=_amount(lambda row: f"{row}.id"),
)
# The metrics a page row shows (``reading.metric_uses``), by code.
METRICS_SHOWN = resolved(Children("metrics", None, "code", where=lambda alias, row: _shown(alias, row)))
columns(
    MetricUsage, MetricRow, **METRIC_USE,
    remaining=resolved(lambda sql, row, *parents: _unless_unlimited(
        sql, row, parents, "NULL", lambda used, limit: sql.greatest(f"{limit} - {used}", "0"))),
    percent_used=resolved(lambda sql, row, *parents: sql.percent(_metric_used(sql, row, *parents),
                                                                 _metric_limit(sql, row, *parents))),
)
columns(
    Usage, OrganizationRow,
    organization_id=resolved(lambda sql, row, *parents: sql.global_id("Organization", f"{row}.organization_id")),
    agent_count=resolved(_agent_count),
    **{name: resolved(lambda sql, row, *parents, code=code: f"coalesce({_used_of(code, row)}, 0)")
       for name, code in COUNTED.items()},
    usage_month=resolved(lambda sql, row, *parents: f"{row}.month_key"),
    **MONTH_BOUNDS,
    limits=resolved(Children("plan_limits", None, _BY_CODE, where=_OF_PLAN)),
    metrics=METRICS_SHOWN,
)


@strawberry.type(description="A limited metric's current value, in the shape of a plan's limit (`limit` is the value).")
class PlanLimitValue:
    metric: Metric
    limit: BigInt


@strawberry.type(description="Current values in the shape of a plan's limits.")
class PlanLimitsUsage:
    agent_count: int
    limits: list[PlanLimitValue] = strawberry.field(
        description="Each limited metric with its current value as `limit`.")


def trial_flags(status: DomainSubscriptionStatus | None, trial_end: datetime | None, now: datetime) -> dict[str, bool]:
    """``PlanLimits``' ``isTrial`` and ``expiredTrial`` of the live subscription's status and trial end (none: false)."""
    return {"is_trial": status is DomainSubscriptionStatus.TRIALING,
            "expired_trial": status is not None and trial_expired(status, trial_end, now)}


@strawberry.type(name="PlanLimits", description="Seed 004's plan-limits view.")
class PlanLimitsType:
    current_plan: PlanType | None
    is_trial: bool
    trial_end_date: datetime | None
    expired_trial: bool
    plans: list[PlanType] = strawberry.field(description="Every active plan: limits, includedAgents, trialDays, "
                                                         "basePriceMonthly.")
    usage: PlanLimitsUsage
    view: strawberry.Private[PlanLimitsValue]

    @strawberry.field(description="The spending cap (seed 004's capped amount); null without a subscription.")
    async def capped_amount(self, info: Info) -> SpendingCap | None:
        subscription = self.view.usage.organization.subscription
        return await spending_cap_of(info, subscription) if subscription is not None else None

    @classmethod
    def of(cls, view: PlanLimitsValue, now: datetime) -> PlanLimitsType:
        found = view.usage.organization
        subscription = found.subscription
        trial_end = subscription.trial_ends_at if subscription else None
        status = subscription.status if subscription else None
        return cls(
            current_plan=PlanType.from_row(found.plan) if found.plan else None,
            trial_end_date=trial_end,
            **trial_flags(status, trial_end, now),
            plans=[PlanType.from_row(plan) for plan in view.plans],
            usage=PlanLimitsUsage(
                agent_count=view.usage.agent_count,
                limits=[PlanLimitValue(metric=Metric.from_row(use.metric), limit=use.use.used)
                        for use in view.usage.metrics if use.limited],
            ),
            view=view,
        )


def plan_limits_row(organization_id: Any, plan_id: Any, agent_count: Any, month_key: Any, trial_ends_at: Any,
                    billing_period: Any, plan_version: Any, spending_cap: Any, is_trial: Any, expired_trial: Any) -> Any:
    """``planLimits``' row: ``usage_row``'s values; the live subscription's trial end, and the trial's two flags as
    ``PlanLimitsType.of`` finds them (``DomainSubscriptionStatus``, ``trial_expired``); and the columns of the
    subscription's row that ``SpendingCap``'s forms read (``subscriptions.types``), under the same names."""
    return values_row(("organization_id", organization_id, Uuid), ("plan_id", plan_id, Uuid),
                      ("agent_count", agent_count, Integer), ("month_key", month_key, String),
                      ("trial_ends_at", trial_ends_at, UTCDateTime()), ("billing_period", billing_period, String),
                      ("plan_version", plan_version, Integer), ("spending_cap", spending_cap, BigInteger),
                      ("is_trial", is_trial, Boolean), ("expired_trial", expired_trial, Boolean))


columns(PlanLimitValue, PlanLimitRow, metric=resolved(Parent("metrics", "metric_id")), limit=resolved(_limit_used))
columns(PlanLimitsUsage, OrganizationRow, agent_count=resolved(_agent_count),
        limits=resolved(Children("plan_limits", None, _BY_CODE, where=_OF_PLAN)))
columns(
    PlanLimitsType, OrganizationRow,
    current_plan=resolved(Parent("plans", None, where=_THE_PLAN)),
    # ``spending_cap_of`` over the live subscription's plan (null without one), this row as the subscription's.
    capped_amount=resolved(Parent("plans", None, where=_THE_PLAN)),
    is_trial=resolved(lambda sql, row, *parents: sql.boolean(f"{row}.is_trial")),
    trial_end_date=resolved(lambda sql, row, *parents: sql.datetime(f"{row}.trial_ends_at")),
    expired_trial=resolved(lambda sql, row, *parents: sql.boolean(f"{row}.expired_trial")),
    # ``plan_limits_view``: the active plans in the organization's currency, in ``plan_order``.
    plans=resolved(Children(
        "plans", None, lambda plan: f"{plan}.sort_order, {plan}.base_price_monthly, {plan}.name, {plan}.id",
        where=lambda plan, row: (f"{plan}.is_active AND {plan}.currency = (SELECT o.currency FROM organizations AS o "
                                 f"WHERE o.id = {row}.organization_id)"))),
    usage=same_row("PlanLimitsUsage"),
)


@strawberry.type(description="The organization a snapshot is of.")
class SnapshotOrganization:
    id: strawberry.ID
    name: str


@strawberry.type(description="The plan of a snapshot's organization.")
class SnapshotPlan:
    slug: str
    name: str


@strawberry.type(description="A metric in a snapshot; `limit` null is unlimited.")
class SnapshotMetric:
    metric: Metric
    used: BigInt
    limit: BigInt | None
    overage: BigInt
    amount: Money | None = strawberry.field(description=AMOUNT)


@strawberry.type(description="An organization's usage in one billing month (GAUGEs: their current value).")
class UsageSnapshot:
    organization: SnapshotOrganization
    plan: SnapshotPlan | None
    month: str = strawberry.field(description="The billing month's key: the YYYY-MM it starts in (as `usage`'s "
                                              "`usageMonth`).")
    period_start: datetime = strawberry.field(description="The billing month's first instant.")
    period_end: datetime = strawberry.field(description="The next billing month's first instant.")
    metrics: list[SnapshotMetric]

    @classmethod
    def of(cls, snapshot: Snapshot) -> UsageSnapshot:
        organization = snapshot.organization.organization
        plan = snapshot.organization.plan
        return cls(
            organization=SnapshotOrganization(id=strawberry.ID(relay.to_base64("Organization", organization.id)),
                                              name=organization.name),
            plan=SnapshotPlan(slug=plan.slug, name=plan.name) if plan else None,
            month=snapshot.month,
            period_start=snapshot.period.start,
            period_end=snapshot.period.end,
            metrics=[SnapshotMetric(metric=Metric.from_row(use.metric), used=use.use.used, limit=use.use.limit,
                                    overage=use.use.overage,
                                    amount=Money.maybe(snapshot.amounts.get(use.metric.id), _currency(plan)))
                     for use in snapshot.metrics],
        )


@strawberry.type
class UsageSnapshotConnection(relay.Connection[UsageSnapshot]):
    pass


# ``usageSnapshots`` on the SQL tier (``graphql.sql_roots``): a computed page, one row per snapshot of the values of
# ``partners.SnapshotBasis`` (the live plan, the billing month: found by the domain's rules in Python; the amounts,
# priced in Python, where selected), from which the database writes the organization, plan and metrics with their
# use, as for ``usage``. The Python form is ``UsageSnapshot.of``; the differential tests hold the two to the same bytes.

def _snapshot_values(count: int, *values: Any) -> Any:
    """``count`` rows of ``MONTH_COLUMNS``' values, one after the other, as ``columns.values_rows``."""
    width = len(MONTH_COLUMNS)
    return values_rows(MONTH_COLUMNS, [values[start:start + width] for start in range(0, count * width, width)])


def snapshot_rows(bases: list[SnapshotBasis]) -> Statement:
    """The page's rows, in the page's order: each of ``MONTH_COLUMNS``' values. The statement's form
    depends only on their number (every value bound, None as NULL): the SQL tier compiles it once for each."""
    values = [value for basis in bases for value in (
        basis.organization_id, basis.plan_id, basis.month_key, basis.month.start, basis.month.end,
        amounts_text(basis.amounts))]
    return Statement(_snapshot_values, tuple(values), shape=(len(bases),), binds_none=True)


columns(SnapshotOrganization, OrganizationRow, id=global_id("Organization"))
columns(SnapshotPlan, PlanRow)
columns(SnapshotMetric, MetricRow, **METRIC_USE)
columns(
    UsageSnapshot, OrganizationRow,
    organization=resolved(Parent("organizations", None, where=lambda own, row: f"{own}.id = {row}.organization_id")),
    plan=resolved(Parent("plans", None, where=_THE_PLAN)),
    month=resolved(lambda sql, row, *parents: f"{row}.month_key"),
    **MONTH_BOUNDS,
    metrics=METRICS_SHOWN,
)


async def plan_limits_of(info: Info, organization_id: uuid.UUID) -> PlanLimitsType:
    """The plan-limits view of an organization (also on changePlan's payload)."""
    context = info.context
    async with context.db.read() as session:
        view = await plan_limits_view(session, organization_id, context.now)
    return PlanLimitsType.of(view, context.now)
