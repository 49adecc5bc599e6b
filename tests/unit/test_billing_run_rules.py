"""The billing run's pure rules: what is due and in which order, periods, overage with the cap,
coupon duration, the dunning schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.billing_run import DueState, DueStep, Step, due_steps, next_period, next_step
from billing_graphql.domain.coupon_duration import coupon_applies, remaining_after
from billing_graphql.domain.dunning import parse_dunning_days, retries_exhausted, retry_at
from billing_graphql.domain.overage import cap_usage, usage_month_keys
from billing_graphql.domain.usage import month_key
from billing_graphql.domain.periods import BillingPeriod, Period, period_at
from billing_graphql.domain.status import SubscriptionStatus as S


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


NOW = utc(2026, 3, 1, 12)


def state(status=S.ACTIVE, *, end=utc(2026, 4, 1), trial=None, retry=None, sent=False) -> DueState:
    return DueState(status=status, current_period_end=end, trial_ends_at=trial, next_retry_at=retry,
                    trial_will_end_sent=sent)


# ---- what is due, in which order ----------------------------------------------------------

def test_nothing_due_before_the_period_ends():
    assert due_steps(state(), NOW) == []
    assert next_step(state(), NOW) is None


def test_period_end_is_due_at_its_instant_exactly():
    end = utc(2026, 3, 1, 12)
    assert due_steps(state(end=end), NOW) == [DueStep(Step.PERIOD_END, end)]
    assert due_steps(state(end=end), NOW - timedelta(seconds=1)) == []


def test_canceled_has_nothing_due():
    assert due_steps(state(S.CANCELED, end=utc(2020, 1, 1), retry=utc(2020, 1, 1)), NOW) == []


def test_trial_end_is_its_own_step_and_the_notice_comes_three_days_before():
    trial_end = utc(2026, 3, 5)
    trialing = state(S.TRIALING, end=trial_end, trial=trial_end)
    assert due_steps(trialing, utc(2026, 3, 1, 23, 59)) == []
    assert due_steps(trialing, utc(2026, 3, 2)) == [DueStep(Step.TRIAL_WILL_END, utc(2026, 3, 2))]
    assert due_steps(trialing, utc(2026, 3, 6)) == [
        DueStep(Step.TRIAL_WILL_END, utc(2026, 3, 2)), DueStep(Step.TRIAL_END, trial_end)]


def test_the_notice_is_sent_once():
    trial_end = utc(2026, 3, 5)
    sent = state(S.TRIALING, end=trial_end, trial=trial_end, sent=True)
    assert due_steps(sent, utc(2026, 3, 3)) == []


def test_a_trial_shorter_than_the_notice_is_told_at_its_start():
    start, end = utc(2026, 3, 1), utc(2026, 3, 2)
    short = DueState(status=S.TRIALING, current_period_end=end, trial_ends_at=end, next_retry_at=None,
                     trial_will_end_sent=False, current_period_start=start)
    assert due_steps(short, start) == [DueStep(Step.TRIAL_WILL_END, start)]


def test_no_notice_once_the_trial_is_over():
    assert due_steps(state(S.ACTIVE, trial=utc(2026, 2, 1)), NOW) == []


def test_same_instant_order_is_retry_then_trial_end_then_period_end():
    at = utc(2026, 2, 1)
    steps = due_steps(state(S.PAST_DUE, end=at, retry=at), NOW)
    assert [step.step for step in steps] == [Step.DUNNING_RETRY, Step.PERIOD_END]
    steps = due_steps(state(S.TRIALING, end=at, trial=at, retry=at), NOW)
    assert [step.step for step in steps] == [Step.TRIAL_WILL_END, Step.DUNNING_RETRY, Step.TRIAL_END]


def test_oldest_first_across_kinds():
    steps = due_steps(state(S.PAST_DUE, end=utc(2026, 2, 1), retry=utc(2026, 2, 10)), NOW)
    assert steps == [DueStep(Step.PERIOD_END, utc(2026, 2, 1)), DueStep(Step.DUNNING_RETRY, utc(2026, 2, 10))]


def test_a_trialing_subscription_with_trial_and_notice_on_one_instant_notifies_first():
    at = utc(2026, 2, 1)
    steps = due_steps(state(S.TRIALING, end=at + timedelta(days=3), trial=at + timedelta(days=3), retry=at), NOW)
    assert [s.step for s in steps] == [Step.TRIAL_WILL_END, Step.DUNNING_RETRY, Step.TRIAL_END]


# ---- periods -------------------------------------------------------------------------------

def test_monthly_from_january_31():
    anchor = utc(2026, 1, 31, 9)
    ends = []
    end = anchor
    for _ in range(4):
        period = next_period(anchor, BillingPeriod.MONTHLY, end)
        ends.append(period.end)
        end = period.end
    assert ends == [utc(2026, 2, 28, 9), utc(2026, 3, 31, 9), utc(2026, 4, 30, 9), utc(2026, 5, 31, 9)]


def test_monthly_from_january_31_in_a_leap_year():
    anchor = utc(2028, 1, 31)
    first = next_period(anchor, BillingPeriod.MONTHLY, anchor)
    second = next_period(anchor, BillingPeriod.MONTHLY, first.end)
    assert (first.start, first.end, second.end) == (anchor, utc(2028, 2, 29), utc(2028, 3, 31))


def test_annual_from_february_29():
    anchor = utc(2028, 2, 29)
    first = next_period(anchor, BillingPeriod.ANNUAL, anchor)
    second = next_period(anchor, BillingPeriod.ANNUAL, first.end)
    assert first.end == utc(2029, 2, 28)
    assert second == Period(utc(2029, 2, 28), utc(2030, 2, 28))
    assert next_period(anchor, BillingPeriod.ANNUAL, utc(2031, 2, 28)).end == utc(2032, 2, 29)


def test_next_period_after_a_trial_starts_at_the_anchor():
    anchor = utc(2026, 1, 29, 9)
    assert next_period(anchor, BillingPeriod.MONTHLY, anchor) == Period(anchor, utc(2026, 2, 28, 9))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(list(BillingPeriod)), st.integers(0, 40))
def test_next_period_walks_the_anchored_schedule(anchor, billing_period, index):
    current = period_at(anchor, billing_period, index)
    assert next_period(anchor, billing_period, current.end) == period_at(anchor, billing_period, index + 1)


# ---- billing months and the cap -------------------------------------------------------------------

def test_month_keys_of_periods():
    assert usage_month_keys(Period(utc(2026, 1, 15, 9), utc(2026, 2, 15, 9))) == ["2026-01"]
    assert usage_month_keys(Period(utc(2026, 1, 31), utc(2026, 2, 28))) == ["2026-01"]
    assert usage_month_keys(Period(utc(2026, 2, 28), utc(2026, 3, 31))) == ["2026-02"]
    assert usage_month_keys(Period(utc(2026, 3, 31), utc(2026, 4, 30))) == ["2026-03"]
    assert usage_month_keys(Period(utc(2026, 1, 1), utc(2026, 2, 1))) == ["2026-01"]
    assert usage_month_keys(Period(utc(2026, 1, 5), utc(2026, 1, 19))) == []  # a two-week trial
    annual = usage_month_keys(Period(utc(2024, 2, 29), utc(2025, 2, 28)))
    assert annual[0] == "2024-02" and annual[-1] == "2025-01" and len(annual) == 12
    assert month_key(utc(2026, 12, 31, 23, 59)) == "2026-12"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(list(BillingPeriod)), st.integers(1, 30))
def test_every_month_belongs_to_exactly_one_period(anchor, billing_period, count):
    keys = [key for index in range(count) for key in usage_month_keys(period_at(anchor, billing_period, index))]
    assert len(keys) == len(set(keys))
    assert len(keys) == count * billing_period.months


def test_cap_bounds_seats_plus_usage():
    assert cap_usage([25000], 100000, None) == [25000]
    assert cap_usage([25000], 100000, 110000) == [10000]
    assert cap_usage([25000], 100000, 200000) == [25000]
    assert cap_usage([25000], 100000, 100000) == [0]
    assert cap_usage([25000], 100000, 50000) == [0]  # below the minimum: nothing more


def test_cap_is_shared_in_order():
    assert cap_usage([600, 600], 0, 1000) == [600, 400]


@given(st.lists(st.integers(0, 10 ** 9), max_size=5), st.integers(0, 10 ** 9), st.integers(0, 10 ** 9))
def test_capped_usage_plus_seats_never_exceeds_the_cap_above_the_minimum(amounts, seats, cap):
    billed = cap_usage(amounts, seats, cap)
    assert all(0 <= b <= a for a, b in zip(amounts, billed))
    assert seats + sum(billed) <= max(cap, seats)


# ---- coupon duration -----------------------------------------------------------------------

def test_once_discounts_the_first_invoice_only():
    remaining = 1
    assert coupon_applies(remaining, has_coupon=True)
    remaining = remaining_after(remaining, 1)
    assert remaining == 0 and not coupon_applies(remaining, has_coupon=True)


def test_repeating_counts_months():
    remaining, used = 3, 0
    while coupon_applies(remaining, has_coupon=True):
        remaining = remaining_after(remaining, 1)
        used += 1
    assert used == 3
    assert remaining_after(3, 12) == 0  # an annual invoice spends all three months


def test_forever_never_runs_out():
    assert remaining_after(None, 12) is None and coupon_applies(None, has_coupon=True)
    assert not coupon_applies(None, has_coupon=False)
    with pytest.raises(ValueError):
        remaining_after(3, 0)


# ---- dunning -------------------------------------------------------------------------------

def test_default_schedule():
    days = parse_dunning_days("1,3,5,7")
    first = utc(2026, 3, 1, 9)
    assert [retry_at(first, n, days) for n in range(5)] == [
        utc(2026, 3, 2, 9), utc(2026, 3, 4, 9), utc(2026, 3, 6, 9), utc(2026, 3, 8, 9), None]
    assert not retries_exhausted(3, days) and retries_exhausted(4, days)


@pytest.mark.parametrize("text", ["1,x", "0,1", "3,2", "2,2", "-1"])
def test_bad_schedules(text):
    with pytest.raises(ValueError):
        parse_dunning_days(text)


def test_schedule_forms():
    assert parse_dunning_days(" 2 , 4 ") == (2, 4)
    assert parse_dunning_days("") == ()
    assert retry_at(NOW, 0, ()) is None
    with pytest.raises(ValueError):
        retry_at(NOW, -1, (1,))
