"""Usage rules: billing months, batch checks and folding, limits and thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.usage import (
    CheckedEvent,
    EventInput,
    LimitUse,
    MetricInfo,
    billing_month,
    check_batch,
    fold,
    month_key,
    parse_month,
    thresholds_reached,
    usage_period,
)

T = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
METRICS = {"messages": MetricInfo("m", "messages", False), "agents": MetricInfo("a", "agents", True)}


def test_usage_period_is_the_month_in_force_or_the_one_starting_in_the_month_asked():
    now = datetime(2026, 3, 10, tzinfo=UTC)
    assert usage_period(T, now) == billing_month(T, now)  # Feb 28 -> Mar 31
    assert usage_period(T, now, parse_month("2026-02")).start == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert usage_period(T, now, parse_month("2026-03")).start == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert usage_period(None, now, parse_month("2026-03")).start == datetime(2026, 3, 1, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)),
       st.integers(2001, 2079), st.integers(1, 12))
def test_exactly_one_billing_month_starts_in_each_calendar_month(anchor, year, month):
    first = datetime(year, month, 1, tzinfo=UTC)
    period = usage_period(anchor, first, first)
    assert (period.start.year, period.start.month) == (year, month)
    assert month_key(period.start) == f"{year:04d}-{month:02d}"
    assert period == billing_month(anchor, period.start)  # a billing month of the anchor's schedule


def test_billing_months_follow_the_anchor_and_clamp_to_the_months_end():
    feb = billing_month(T, datetime(2026, 3, 1, tzinfo=UTC))
    assert (feb.start, feb.end) == (datetime(2026, 2, 28, 12, tzinfo=UTC), datetime(2026, 3, 31, 12, tzinfo=UTC))
    before = billing_month(T, datetime(2026, 1, 1, tzinfo=UTC))  # before the anchor
    assert before.start == datetime(2025, 12, 31, 12, tzinfo=UTC) and month_key(before.start) == "2025-12"
    assert billing_month(None, T).start == datetime(2026, 1, 1, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)))
def test_the_billing_month_contains_the_instant_and_its_key_is_unique(anchor, instant):
    month = billing_month(anchor, instant)
    assert month.contains(instant)
    following = billing_month(anchor, month.end)
    assert following.start == month.end and month_key(following.start) != month_key(month.start)


def test_parse_month():
    assert parse_month("2026-03") == datetime(2026, 3, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-3", "26-03", "", "2026-03\x00"):
        with pytest.raises(BillingError):
            parse_month(bad)


def test_check_batch_refuses_per_event_and_folds_duplicates():
    events = [EventInput("messages", 2, T, "a"), EventInput("messages", 3, T, "a"),
              EventInput("messages", True, T, "b"), EventInput("agents", 1, T.replace(tzinfo=None), "c"),
              EventInput("messages", 1, T, "x" * 201)]
    batch = check_batch(events, METRICS, T)
    assert len(batch.accepted) == 1 and batch.duplicates_in_batch == 1
    assert [e.field for e in batch.errors] == ["events[2].quantity", "events[3].timestamp", "events[4].idempotencyKey"]
    with pytest.raises(BillingError):
        check_batch([EventInput("messages", 1, T, str(i)) for i in range(1001)], METRICS, T)


def test_fold_sums_counters_per_month_and_keeps_the_last_gauge_by_timestamp():
    anchor = datetime(2026, 1, 15, tzinfo=UTC)
    events = [CheckedEvent(EventInput("messages", 2, T, "1"), METRICS["messages"], 2),
              CheckedEvent(EventInput("messages", 5, anchor - timedelta(seconds=1), "2"), METRICS["messages"], 5),
              CheckedEvent(EventInput("agents", 9, T, "3"), METRICS["agents"], 9),
              CheckedEvent(EventInput("agents", 4, T - timedelta(hours=1), "4"), METRICS["agents"], 4),
              CheckedEvent(EventInput("agents", 6, T, "5"), METRICS["agents"], 6)]
    folded = fold(events, anchor)
    assert folded.added == {("m", "2026-01"): 2, ("m", "2025-12"): 5}
    # A gauge's last value by timestamp, under its month and ``current``; a tie keeps the later event.
    month = month_key(billing_month(anchor, T).start)
    assert folded.latest == {("a", "current"): (T, 6), ("a", month): (T, 6)}


def test_limit_use_and_thresholds():
    assert (LimitUse(130, 100).remaining, LimitUse(130, 100).overage, LimitUse(130, 100).exceeded) == (0, 30, True)
    assert LimitUse(1, 3).percent_used == Decimal("33.33")
    assert LimitUse(5, None).percent_used is None and LimitUse(5, None).remaining is None
    assert LimitUse(0, 0).percent_used == Decimal("0.00") and not LimitUse(0, 0).exceeded
    assert thresholds_reached(79, 100) == [] and thresholds_reached(80, 100) == [80]
    assert thresholds_reached(100, 100) == [80, 100] and thresholds_reached(0, 0) == []
    assert thresholds_reached(1, 0) == [80, 100] and thresholds_reached(10**9, None) == []
