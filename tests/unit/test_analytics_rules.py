"""domain.analytics: a subscription's MRR, the months of a range, carrying the state through them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.analytics import (
    CashFlow,
    Movements,
    Snapshot,
    analytics_range,
    average,
    month_figures,
    monthly_recurring_revenue,
    rate,
)
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.invoices import Discount, DiscountKind
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.proration import AddonPrice, PlanPrice, Recurring
from billing_graphql.domain.status import SubscriptionStatus

S = SubscriptionStatus
PRO = PlanPrice(name="Pro", currency="USD", base_monthly=3000, base_annual=30000, per_agent=500, included_agents=2)
NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)


def mrr(period=BillingPeriod.MONTHLY, agents=1, addons=(), status=S.ACTIVE, discount=None):
    return monthly_recurring_revenue(Recurring(PRO, period, agents, tuple(addons)), status, discount)


def test_monthly_base_price_is_the_mrr():
    assert mrr() == 3000


def test_annual_price_counts_a_twelfth_rounded_half_up():
    # 30000 / 12 = 2500; with 3 agents (1 above the 2 included) 500 x 12 more a year: 36000 / 12.
    assert mrr(BillingPeriod.ANNUAL) == 2500
    assert mrr(BillingPeriod.ANNUAL, agents=3) == 3000
    odd = PlanPrice(name="Odd", currency="USD", base_monthly=0, base_annual=1000, per_agent=0, included_agents=1)
    assert monthly_recurring_revenue(Recurring(odd, BillingPeriod.ANNUAL, 1), S.ACTIVE, None) == 83  # 83.33


def test_seats_beyond_the_included_agents_and_add_ons_count():
    flat = AddonPrice(name="Support", monthly=400, annual=4000, quantity=2)
    per_agent = AddonPrice(name="AI", monthly=100, annual=1000, per_agent=True)
    # 3000 + (5 - 2) x 500 + 2 x 400 + 5 x 100
    assert mrr(agents=5, addons=[flat, per_agent]) == 3000 + 1500 + 800 + 500
    # annual: (30000 + 3 x 500 x 12 + 2 x 4000 + 5 x 1000) / 12 = 61000 / 12 = 5083.33
    assert mrr(BillingPeriod.ANNUAL, agents=5, addons=[flat, per_agent]) == 5083


@pytest.mark.parametrize("status", [S.TRIALING, S.UNPAID, S.CANCELED])
def test_only_active_and_past_due_count(status):
    assert mrr(status=status) == 0
    assert mrr(status=S.PAST_DUE) == 3000


def test_running_discounts_apply_before_normalizing():
    assert mrr(discount=Discount(DiscountKind.PERCENTAGE, percent_off=25)) == 2250
    assert mrr(discount=Discount(DiscountKind.PERCENTAGE, percent_off=100)) == 0
    # a fixed amount is per period: 6000 off an annual 30000 -> 24000 / 12
    assert mrr(BillingPeriod.ANNUAL, discount=Discount(DiscountKind.FIXED, amount_off=6000, currency="USD")) == 2000
    # never below zero, and a fixed amount in another currency does not apply
    assert mrr(discount=Discount(DiscountKind.FIXED, amount_off=99999, currency="USD")) == 0
    assert mrr(discount=Discount(DiscountKind.FIXED, amount_off=500, currency="IDR")) == 3000


@given(agents=st.integers(0, 500), percent=st.integers(1, 100), annual=st.booleans())
def test_mrr_is_never_negative_nor_above_the_undiscounted(agents, percent, annual):
    period = BillingPeriod.ANNUAL if annual else BillingPeriod.MONTHLY
    full = mrr(period, agents)
    discounted = mrr(period, agents, discount=Discount(DiscountKind.PERCENTAGE, percent_off=percent))
    assert 0 <= discounted <= full


def test_a_range_is_cut_into_calendar_months_clipped_to_it():
    span = analytics_range(date(2026, 1, 15), date(2026, 3, 10), NOW)
    assert [(m.key, m.start.day, m.end.month, m.end.day) for m in span.months] == [
        ("2026-01", 15, 2, 1), ("2026-02", 1, 3, 1), ("2026-03", 1, 3, 11)]


def test_a_range_stops_just_after_now():
    span = analytics_range(date(2026, 3, 1), date(2026, 12, 31), NOW)
    assert [m.key for m in span.months] == ["2026-03", "2026-04"]
    assert span.end == NOW + timedelta(microseconds=1)  # what happened at now counts
    assert analytics_range(date(2027, 1, 1), date(2027, 2, 1), NOW).is_empty
    assert analytics_range(date(9999, 12, 1), date(9999, 12, 31), NOW).is_empty


def test_from_after_to_is_an_empty_range():
    assert analytics_range(date(2026, 3, 1), date(2026, 1, 1), NOW).is_empty


def test_december_rolls_into_january():
    span = analytics_range(date(2025, 12, 1), date(2026, 1, 31), NOW)
    assert [(m.key, m.end) for m in span.months] == [
        ("2025-12", datetime(2026, 1, 1, tzinfo=UTC)), ("2026-01", datetime(2026, 2, 1, tzinfo=UTC))]


def test_at_most_120_months():
    assert len(analytics_range(date(2016, 5, 1), date(2026, 4, 1), NOW).months) == 120
    with pytest.raises(BillingError, match="at most 120 months"):
        analytics_range(date(2016, 4, 1), date(2026, 4, 1), NOW)


def test_rates_and_averages_round_half_up_and_are_zero_without_a_base():
    assert (rate(1, 3), rate(2, 3), rate(0, 0), rate(5, 4)) == (
        Decimal("0.3333"), Decimal("0.6667"), Decimal("0.0000"), Decimal("1.2500"))
    assert (average(9833, 4), average(7, 2), average(5, 0)) == (2458, 4, 0)


def test_months_carry_the_start_state_forward():
    span = analytics_range(date(2026, 1, 1), date(2026, 2, 28), NOW)
    start = Snapshot(mrr=1000, live=4, paying=2)
    moved = {
        "2026-01": Movements(new_subscriptions=2, churned_subscriptions=1, new_mrr=500, expansion_mrr=300,
                             contraction_mrr=100, churned_mrr=200, trial_conversions=1, paying_delta=1),
        # February: nothing moved
    }
    cash = {"2026-02": CashFlow(payments=900, refunds=1000, succeeded_payments=3, failed_payments=1)}
    figures = month_figures(span, start, moved, cash)
    january, february = figures.months
    # 1000 + 500 + 300 - 100 - 200 = 1500 over 3 paying; churn 1 of 4 live
    assert (january.mrr, january.arr, january.arpu, january.churn_rate) == (1500, 18000, 500, Decimal("0.2500"))
    assert (january.net_revenue, january.trial_conversions) == (0, 1)
    # February starts from January's end: 5 live, 1500 MRR
    assert (february.mrr, february.arpu, february.churn_rate, february.net_revenue) == (1500, 500, Decimal("0.0000"), -100)
    assert figures.failed_payments_rate == Decimal("0.2500")


movement_values = st.builds(Movements, *(st.integers(0, 10**7) for _ in range(7)))


@given(st.integers(0, 10**8), st.lists(movement_values, min_size=1, max_size=24))
def test_every_month_mrr_end_is_start_plus_new_and_expansion_minus_contraction_and_churn(start_mrr, moves):
    span = analytics_range(date(2024, 1, 1), date(2025, 12, 31), NOW)
    moved = {window.key: move for window, move in zip(span.months, moves)}
    previous = start_mrr
    for month in month_figures(span, Snapshot(mrr=start_mrr), moved, {}).months:
        move = moved.get(month.month, Movements())
        assert month.mrr == previous + move.new_mrr + move.expansion_mrr - move.contraction_mrr - move.churned_mrr
        assert (month.new_mrr, month.churned_mrr) == (move.new_mrr, move.churned_mrr)
        previous = month.mrr


def test_no_months_no_figures():
    figures = month_figures(analytics_range(date(2026, 2, 1), date(2026, 1, 1), NOW), Snapshot(5, 5, 5), {}, {})
    assert figures.months == () and figures.failed_payments_rate == Decimal("0.0000")
