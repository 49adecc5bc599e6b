"""Revenue analytics: a subscription's MRR, the months of a range, and the monthly figures.

Definitions (as Stripe Billing and Baremetrics define them; the GraphQL descriptions repeat them):

- **MRR** of a subscription: its recurring price for one billing period (plan base price, agents
  above the plan's included agents, add-ons: FLAT x quantity, PER_AGENT x quantity x agents),
  minus the coupon still running on it (PERCENTAGE of that price, or a FIXED amount per period in
  the plan's currency, never more than the price), divided by the months of the period (an
  annual price counts 1/12 a month), rounded once half up to the minor unit; tax excluded. Only
  ACTIVE and PAST_DUE subscriptions count (Stripe counts past-due ones until they are canceled
  or marked unpaid); TRIALING, UNPAID and CANCELED ones count 0.
- **MRR movements** come from consecutive revisions of one subscription's MRR (previous -> next):
  0 -> x is new MRR (a new paying subscription, a trial that converts, an unpaid one that pays
  again); x -> y with both above 0 is expansion (y > x) or contraction (y < x), from plan
  changes, seats, add-ons and discounts; x -> 0 is churned MRR (a cancellation, a subscription
  that became UNPAID, a 100% discount). So MRR at a month's end = MRR at its start + new +
  expansion - contraction - churned, exactly.
- **Subscriptions**: live = not CANCELED (trials included); new = started in the month; churned =
  canceled in the month (a canceled trial too: it was live, though it churns no MRR); churn rate
  = churned / live at the month's start (0 when none were live).
- **Trial conversions**: trials that ended with the subscription counting toward MRR (TRIALING
  -> ACTIVE or PAST_DUE) in the month.
- **ARPU** = MRR / paying organizations (those whose subscription has MRR above 0), rounded half up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from billing_graphql.domain.errors import validation
from billing_graphql.domain.invoices import Discount
from billing_graphql.domain.proration import Recurring, round_half_up
from billing_graphql.domain.status import SubscriptionStatus

MRR_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
MAX_MONTHS = 120
RATE_PLACES = Decimal("0.0001")
JUST_AFTER = timedelta(microseconds=1)  # the smallest step of a stored instant


def monthly_recurring_revenue(recurring: Recurring, status: SubscriptionStatus, discount: Discount | None) -> int:
    """The subscription's MRR in minor units of its plan's currency (see the module docstring)."""
    if status not in MRR_STATUSES:
        return 0
    price = recurring.total
    off = discount.amount_for(price, recurring.currency) if discount is not None else 0
    return round_half_up(Fraction(price - off, recurring.billing_period.months))


def rate(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator to four places, half up; 0 when the denominator is 0."""
    if denominator <= 0:
        return Decimal("0.0000")
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def average(total: int, count: int) -> int:
    """total / count in whole minor units, half up; 0 when the count is 0."""
    return round_half_up(Fraction(total, count)) if count > 0 else 0


# ---- the range --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MonthWindow:
    """One calendar month (UTC) of the range, clipped to the range: [start, end)."""

    key: str  # "YYYY-MM"
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime
    months: tuple[MonthWindow, ...]

    @property
    def is_empty(self) -> bool:
        return not self.months


def _month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def analytics_range(first: date, last: date, now: datetime) -> Range:
    """The instants [first 00:00 UTC, the day after ``last`` 00:00 UTC), never past ``now``
    (what happened at ``now`` included: the range then ends just after it), cut into calendar
    months. ``first`` after ``last`` (or a range that starts after now) is empty: no months. At
    most ``MAX_MONTHS`` months."""
    if (last.year - first.year) * 12 + last.month - first.month + 1 > MAX_MONTHS:
        raise validation(f"The range spans at most {MAX_MONTHS} months.", "to")
    start = datetime.combine(first, time(), tzinfo=UTC)
    after_now = now + JUST_AFTER
    if last >= now.date():
        end = after_now
    else:
        end = min(datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC), after_now)
    months: list[MonthWindow] = []
    month = _month_start(first)
    while month < end:
        following = _next_month(month)
        months.append(MonthWindow(month.strftime("%Y-%m"), max(month, start), min(following, end)))
        month = following
    if end <= start:
        months = []
    return Range(start=start, end=max(end, start), months=tuple(months))


# ---- assembling the months from the database's aggregates ------------------------------------

@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state at an instant: MRR, live subscriptions, paying organizations."""

    mrr: int = 0
    live: int = 0
    paying: int = 0


@dataclass(frozen=True, slots=True)
class Movements:
    """What the revisions that began in one month add up to."""

    new_subscriptions: int = 0
    churned_subscriptions: int = 0
    new_mrr: int = 0
    expansion_mrr: int = 0
    contraction_mrr: int = 0
    churned_mrr: int = 0
    trial_conversions: int = 0
    paying_delta: int = 0  # organizations that started paying minus those that stopped


@dataclass(frozen=True, slots=True)
class CashFlow:
    """Payments and refunds of one month, payment attempts that failed, and bad debt (the amount
    due of invoices marked uncollectible in the month and still unpaid)."""

    payments: int = 0
    refunds: int = 0
    succeeded_payments: int = 0
    failed_payments: int = 0
    uncollectible: int = 0


@dataclass(frozen=True, slots=True)
class MonthFigures:
    month: str
    mrr: int
    arr: int
    new_subscriptions: int
    churned_subscriptions: int
    churn_rate: Decimal
    new_mrr: int
    expansion_mrr: int
    contraction_mrr: int
    churned_mrr: int
    net_revenue: int
    arpu: int
    trial_conversions: int
    uncollectible: int = 0


@dataclass(frozen=True, slots=True)
class RangeFigures:
    months: tuple[MonthFigures, ...] = field(default_factory=tuple)
    failed_payments_rate: Decimal = Decimal("0.0000")


def month_figures(
    span: Range,
    at_start: Snapshot,
    movements: Mapping[str, Movements],
    cash: Mapping[str, CashFlow],
) -> RangeFigures:
    """Each month's figures: the state at the range's start carried forward by each month's
    movements (a month's end is the next month's start)."""
    figures: list[MonthFigures] = []
    state = at_start
    succeeded = failed = 0
    for window in span.months:
        moved = movements.get(window.key, Movements())
        money = cash.get(window.key, CashFlow())
        mrr = (state.mrr + moved.new_mrr + moved.expansion_mrr - moved.contraction_mrr - moved.churned_mrr)
        end = Snapshot(
            mrr=mrr,
            live=state.live + moved.new_subscriptions - moved.churned_subscriptions,
            paying=state.paying + moved.paying_delta,
        )
        figures.append(MonthFigures(
            month=window.key,
            mrr=end.mrr,
            arr=end.mrr * 12,
            new_subscriptions=moved.new_subscriptions,
            churned_subscriptions=moved.churned_subscriptions,
            churn_rate=rate(moved.churned_subscriptions, state.live),
            new_mrr=moved.new_mrr,
            expansion_mrr=moved.expansion_mrr,
            contraction_mrr=moved.contraction_mrr,
            churned_mrr=moved.churned_mrr,
            net_revenue=money.payments - money.refunds,
            arpu=average(end.mrr, end.paying),
            trial_conversions=moved.trial_conversions,
            uncollectible=money.uncollectible,
        ))
        succeeded += money.succeeded_payments
        failed += money.failed_payments
        state = end
    return RangeFigures(months=tuple(figures), failed_payments_rate=rate(failed, succeeded + failed))
