"""`analytics`: the revenue figures staff see, with their definitions as descriptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any

import strawberry
from sqlalchemy import BigInteger, Integer, String, Uuid

from billing_graphql.domain.day_range import check_day_range
from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.graphql.columns import (
    PLACE, Children, Form, Nested, Parent, RootQuery, Statement, columns, resolved, typed_row, values_relation,
)
from billing_graphql.graphql.common import Money
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.scalars import _serialize_decimal
from billing_graphql.graphql.subscriptions.types import SubscriptionStatus
from billing_graphql.services.analytics.report import AnalyticsReport, revenue_analytics, revenue_analytics_read

MRR_HELP = (
    "Monthly recurring revenue: the sum over ACTIVE and PAST_DUE subscriptions (Stripe counts past-due "
    "ones until they are canceled or unpaid; TRIALING, UNPAID and CANCELED count 0) of the recurring "
    "price of one billing period (plan base price, agents above the included ones, add-ons) minus the "
    "coupon still running on it, divided by the period's months (an annual price counts 1/12), rounded "
    "half up; tax excluded; only subscriptions in the requested currency, never converted."
)


@strawberry.type(description="One calendar month (UTC) of the range; the first and last are cut to the range.")
class AnalyticsMonth:
    month: str = strawberry.field(description='The month, "YYYY-MM".')
    mrr: Money = strawberry.field(description="MRR at the month's end (now for the current month). " + MRR_HELP)
    arr: Money = strawberry.field(description="Annual run rate at the month's end: MRR x 12.")
    new_subscriptions: int = strawberry.field(
        description="Subscriptions started in the month (trials included)."
    )
    churned_subscriptions: int = strawberry.field(
        description="Subscriptions canceled in the month, trials included (a canceled trial churns no MRR)."
    )
    churn_rate: Decimal = strawberry.field(
        description="churnedSubscriptions / live (not CANCELED) subscriptions at the month's start, to 4 places; "
        "0 when none were live."
    )
    new_mrr: Money = strawberry.field(
        description="MRR of subscriptions going from 0 to above 0 in the month: new paying subscriptions, trials "
        "that convert, unpaid ones paying again."
    )
    expansion_mrr: Money = strawberry.field(
        description="MRR gained by subscriptions already above 0: upgrades, more agents, add-ons, a discount ending."
    )
    contraction_mrr: Money = strawberry.field(
        description="MRR lost by subscriptions that stay above 0: downgrades, fewer agents, add-ons removed, discounts."
    )
    churned_mrr: Money = strawberry.field(
        description="MRR of subscriptions falling to 0: cancellations, subscriptions becoming UNPAID, 100% discounts. "
        "MRR at the month's end = at its start + new + expansion - contraction - churned."
    )
    net_revenue: Money = strawberry.field(
        description="Succeeded payments minus succeeded refunds dated in the month (as received: tax included); "
        "a credit note refunded through the processor is such a refund."
    )
    uncollectible: Money = strawberry.field(
        description="Bad debt: the amount still due on invoices marked uncollectible in the month (one paid later "
        "leaves it)."
    )
    arpu: Money = strawberry.field(
        description="Average revenue per paying organization at the month's end: MRR / organizations whose "
        "subscription has MRR above 0, rounded half up; 0 when there are none."
    )
    trial_conversions: int = strawberry.field(
        description="Trials that ended in the month with the subscription counting toward MRR (ACTIVE or PAST_DUE)."
    )


@strawberry.type(description="Subscriptions in one status now.")
class AnalyticsStatusCount:
    status: SubscriptionStatus
    count: int


@strawberry.type(description="A plan of the currency (active, or with live subscriptions) now.")
class AnalyticsPlan:
    plan: PlanType
    subscriptions: int = strawberry.field(description="Live (not CANCELED) subscriptions on the plan.")
    mrr: Money = strawberry.field(description="The MRR of those subscriptions.")


@strawberry.type(description="Revenue analytics in one currency (never converted).")
class Analytics:
    mrr: Money = strawberry.field(description="MRR now. " + MRR_HELP)
    arr: Money = strawberry.field(description="Annual run rate now: MRR x 12.")
    months: list[AnalyticsMonth] = strawberry.field(
        description="Each month of the range, up to now; empty when the range is in the future."
    )
    by_status: list[AnalyticsStatusCount] = strawberry.field(
        description="Subscriptions by status now (every status, zeros included)."
    )
    by_plan: list[AnalyticsPlan] = strawberry.field(description="Live subscriptions and MRR per plan now.")
    outstanding: Money = strawberry.field(
        description="Amount due now on OPEN invoices: total - credit applied - amount paid - credit notes "
        "that lowered it."
    )
    failed_payments_rate: Decimal = strawberry.field(
        description="Failed payment attempts / (failed + succeeded) attempts in the range, to 4 places; each dunning "
        "retry is an attempt; pending ones are left out; 0 when there were none."
    )

    @classmethod
    def of(cls, report: AnalyticsReport) -> Analytics:
        currency = report.currency

        def money(minor: int) -> Money:
            return Money.of(minor, currency)

        return cls(
            mrr=money(report.mrr),
            arr=money(report.arr),
            months=[
                AnalyticsMonth(
                    month=m.month, mrr=money(m.mrr), arr=money(m.arr), new_subscriptions=m.new_subscriptions,
                    churned_subscriptions=m.churned_subscriptions, churn_rate=m.churn_rate, new_mrr=money(m.new_mrr),
                    expansion_mrr=money(m.expansion_mrr), contraction_mrr=money(m.contraction_mrr),
                    churned_mrr=money(m.churned_mrr), net_revenue=money(m.net_revenue), arpu=money(m.arpu),
                    trial_conversions=m.trial_conversions, uncollectible=money(m.uncollectible),
                )
                for m in report.months
            ],
            by_status=[AnalyticsStatusCount(status=status, count=count) for status, count in report.by_status],
            by_plan=[AnalyticsPlan(plan=PlanType.from_row(row.plan), subscriptions=row.subscriptions,
                                   mrr=money(row.mrr)) for row in report.by_plan],
            outstanding=money(report.outstanding),
            failed_payments_rate=report.failed_payments_rate,
        )


# ``analytics`` on the SQL tier (``graphql.sql_roots``): a computed object. Its first read is the report's four
# statements in one (``revenue_analytics_read``), its months carried in Python by ``domain.analytics.month_figures``;
# its row is the report's figures, bound (``analytics_row``): the scalars as the row's columns, the months, statuses
# and plans as relations of values (``columns.values_relation``) that its lists read. The database writes the answer:
# Money as ``Money.of`` shows it, each plan from its table by id, the rates as the Decimal scalar's text (bound as
# ``_serialize_decimal`` writes it). The Python form is ``Analytics.of``; the differential tests hold the two to the
# same bytes.

ROW_COLUMNS = (("currency", String), ("mrr", BigInteger), ("arr", BigInteger), ("outstanding", BigInteger),
               ("failed_payments_rate", String))
MONTHS, STATUSES, PLANS = "bgq_months", "bgq_statuses", "bgq_plans"  # the row's relations of values
# A month's Money and counts (the names of ``MonthFigures``' and ``AnalyticsMonth``'s fields, and of the columns).
_MONTH_MONEY = ("mrr", "arr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "net_revenue", "arpu",
                "uncollectible")
_MONTH_COUNTS = ("new_subscriptions", "churned_subscriptions", "trial_conversions")
MONTH_COLUMNS = (("month", String), ("churn_rate", String), *((name, Integer) for name in _MONTH_COUNTS),
                 *((name, BigInteger) for name in _MONTH_MONEY))
STATUS_COLUMNS = (("status", String), ("count", Integer))
PLAN_COLUMNS = (("plan_id", Uuid), ("subscriptions", Integer), ("mrr", BigInteger))
_MONTH_VALUES = attrgetter(*(name for name, _ in MONTH_COLUMNS))  # a MonthFigures' values, in MONTH_COLUMNS' order
_RATE = 1  # churn_rate's place in MONTH_COLUMNS


def _rows(values: tuple[Any, ...], count: int, width: int) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    """The first ``count`` rows of ``width`` values, and the values after them."""
    return [values[start:start + width] for start in range(0, count * width, width)], values[count * width:]


def _analytics_values(months: int, statuses: int, plans: int, *values: Any) -> Any:
    """``analytics_row``'s statement: ``ROW_COLUMNS``' values, then ``months`` rows of ``MONTH_COLUMNS``', ``statuses``
    of ``STATUS_COLUMNS``' and ``plans`` of ``PLAN_COLUMNS``', the rows as the relations ``MONTHS``, ``STATUSES`` and
    ``PLANS``."""
    row, values = values[:len(ROW_COLUMNS)], values[len(ROW_COLUMNS):]
    month_rows, values = _rows(values, months, len(MONTH_COLUMNS))
    status_rows, values = _rows(values, statuses, len(STATUS_COLUMNS))
    plan_rows, _ = _rows(values, plans, len(PLAN_COLUMNS))
    return (typed_row(ROW_COLUMNS, row)
            .add_cte(values_relation(MONTHS, MONTH_COLUMNS, month_rows))
            .add_cte(values_relation(STATUSES, STATUS_COLUMNS, status_rows))
            .add_cte(values_relation(PLANS, PLAN_COLUMNS, plan_rows)))


def analytics_row(report: AnalyticsReport) -> Statement:
    """The report's figures, every one bound: the statement's form depends only on the numbers of months, statuses
    and plans (the SQL tier compiles it once for each)."""
    values: list[Any] = [report.currency, report.mrr, report.arr, report.outstanding,
                         _serialize_decimal(report.failed_payments_rate)]
    for month in report.months:
        month_values = list(_MONTH_VALUES(month))
        month_values[_RATE] = _serialize_decimal(month_values[_RATE])
        values += month_values
    for status, count in report.by_status:
        values += (status.name, count)
    for row in report.by_plan:
        values += (row.plan, row.subscriptions, row.mrr)
    return Statement(_analytics_values, tuple(values),
                     shape=(len(report.months), len(report.by_status), len(report.by_plan)), binds_none=True)


def _value(name: str) -> Form:
    """A field of the row's column ``name`` (its text by the field's type)."""
    return resolved(lambda sql, row, *parents: f"{row}.{name}")


def _money(name: str) -> Form:
    """Money of the row's column ``name`` (minor units) in the report's currency (the analytics row's)."""
    return resolved(Nested("Money", lambda sql, row, *parents: (f"{row}.{name}", f"{(row, *parents)[-1]}.currency")))


def _values(*names: str) -> dict[str, Form]:
    return {name: _value(name) for name in names}


def _moneys(*names: str) -> dict[str, Form]:
    return {name: _money(name) for name in names}


def _every(relation: str) -> Form:
    """The rows of one of the row's relations of values, in their order."""
    return resolved(Children(relation, None, PLACE, where=lambda alias, row: "1 = 1"))


columns(AnalyticsMonth, None, **_values("month", "churn_rate", *_MONTH_COUNTS), **_moneys(*_MONTH_MONEY))
columns(AnalyticsStatusCount, None, **_values("status", "count"))
columns(AnalyticsPlan, None, plan=resolved(Parent("plans", "plan_id")), **_values("subscriptions"), **_moneys("mrr"))
columns(Analytics, None, **_moneys("mrr", "arr", "outstanding"), **_values("failed_payments_rate"),
        months=_every(MONTHS), by_status=_every(STATUSES), by_plan=_every(PLANS))


async def _read_report(read: Callable[..., Any], context: Any, first: date, last: date,
                       currency: str) -> AnalyticsReport:
    """The report ``read`` gives (``revenue_analytics`` or ``revenue_analytics_read``); a refused range or currency
    is BAD_USER_INPUT."""
    try:
        check_day_range(first, last)
        return await read(context.db, first=first, last=last, currency=currency, now=context.now)
    except DomainBillingError as error:
        raise ClientError(error.message) from None


async def analytics_query(context: Any, parent: Any, from_: date, to: date, currency: str) -> RootQuery:
    """The row the SQL tier writes ``analytics`` from: the report read in one statement, its figures bound
    (``analytics_row``). What the resolver refuses (BAD_USER_INPUT) the generic path answers."""
    return RootQuery(analytics_row(await _read_report(revenue_analytics_read, context, from_, to, currency)))


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Revenue analytics (super-admins) for the days `from`..`to` (UTC, inclusive, at most 120 "
        "months), in one currency: MRR and ARR now and at each month's end, MRR movements, subscriptions, "
        "revenue, receivables. Computed by the database. `from` after `to` (or `to` on 9999-12-31) is "
        "BAD_USER_INPUT.",
    )
    async def analytics(
        self,
        info: Info,
        from_: Annotated[date, strawberry.argument(name="from", description="The first day (UTC).")],
        to: Annotated[date, strawberry.argument(description="The last day (UTC), included.")],
        currency: Annotated[str, strawberry.argument(description="ISO 4217 code, e.g. IDR or USD.")],
    ) -> Analytics | None:
        return Analytics.of(await _read_report(revenue_analytics, info.context, from_, to, currency))
