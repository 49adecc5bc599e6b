"""Anchored billing periods: calendar months keeping the anchor day, clamped to month ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.periods import BillingPeriod, add_months, period_at, period_containing

anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_month_end_anchor_clamps_without_drifting():
    anchor = utc(2025, 1, 31, 10, 30)
    starts = [period_at(anchor, BillingPeriod.MONTHLY, i).start for i in range(4)]
    assert starts == [utc(2025, 1, 31, 10, 30), utc(2025, 2, 28, 10, 30), utc(2025, 3, 31, 10, 30),
                      utc(2025, 4, 30, 10, 30)]


def test_leap_year_february():
    assert add_months(utc(2024, 1, 30), 1) == utc(2024, 2, 29)
    assert add_months(utc(2024, 2, 29), 12) == utc(2025, 2, 28)


def test_annual_adds_twelve_months():
    period = period_at(utc(2024, 2, 29), BillingPeriod.ANNUAL, 0)
    assert period.end == utc(2025, 2, 28)
    assert period_at(utc(2024, 2, 29), BillingPeriod.ANNUAL, 1).end == utc(2026, 2, 28)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        period_at(datetime(2025, 1, 1), BillingPeriod.MONTHLY, 0)


@given(anchor=anchors, index=st.integers(min_value=0, max_value=200),
       billing_period=st.sampled_from(list(BillingPeriod)))
def test_periods_tile_the_timeline(anchor, index, billing_period):
    this, following = period_at(anchor, billing_period, index), period_at(anchor, billing_period, index + 1)
    assert this.end == following.start
    assert this.start < this.end
    days = (this.end - this.start).days
    assert (28 <= days <= 31) if billing_period is BillingPeriod.MONTHLY else (365 <= days <= 366)


@given(anchor=anchors, index=st.integers(min_value=0, max_value=200))
def test_period_start_keeps_anchor_day_unless_month_is_shorter(anchor, index):
    start = period_at(anchor, BillingPeriod.MONTHLY, index).start
    assert start.day == anchor.day or (start.day < anchor.day and (start + timedelta(days=1)).day == 1)
    assert start.time() == anchor.time()


@given(anchor=anchors, offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
       billing_period=st.sampled_from(list(BillingPeriod)))
def test_period_containing_contains(anchor, offset, billing_period):
    instant = anchor + offset
    period = period_containing(anchor, billing_period, instant)
    assert period.start <= instant < period.end
