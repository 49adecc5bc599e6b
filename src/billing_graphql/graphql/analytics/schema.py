"""`analytics`: the revenue figures staff see, with their definitions as descriptions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import strawberry

from billing_graphql.domain.day_range import check_day_range
from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.graphql.common import Money
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.subscriptions.types import SubscriptionStatus
from billing_graphql.services.analytics.report import AnalyticsReport, revenue_analytics

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
        try:
            check_day_range(from_, to)
            report = await revenue_analytics(info.context.db, first=from_, last=to, currency=currency,
                                             now=info.context.now)
        except DomainBillingError as error:
            raise ClientError(error.message) from None
        return Analytics.of(report)
