"""Aggregation rules (domain.aggregation): metric definitions, event properties, and incremental
folding that agrees with aggregating the whole history, however it is split into batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.aggregation import (
    Aggregation,
    MetricKind,
    Stored,
    aggregate,
    check_properties,
    event_value,
    merge,
    metric_aggregation,
    property_text,
)
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.usage import EventInput, MetricInfo, check_batch

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_kind_alone_maps_to_its_aggregation_and_both_must_agree():
    assert metric_aggregation(MetricKind.COUNTER, None, None) == (MetricKind.COUNTER, Aggregation.SUM, None)
    assert metric_aggregation(MetricKind.GAUGE, None, None) == (MetricKind.GAUGE, Aggregation.LATEST, None)
    assert metric_aggregation(None, Aggregation.MAX, "agents") == (MetricKind.COUNTER, Aggregation.MAX, "agents")
    assert metric_aggregation(MetricKind.GAUGE, Aggregation.LATEST, None)[0] is MetricKind.GAUGE
    for kind, aggregation, property_name, field in [
        (None, None, None, "aggregation"),
        (MetricKind.GAUGE, Aggregation.SUM, None, "kind"),
        (MetricKind.COUNTER, Aggregation.LATEST, None, "kind"),
        (None, Aggregation.UNIQUE_COUNT, None, "property"),
        (None, Aggregation.COUNT, "user", "property"),
        (None, Aggregation.SUM, "", "property"),
        (None, Aggregation.SUM, "9lives", "property"),
        (None, Aggregation.SUM, "x" * 65, "property"),
        (None, Aggregation.SUM, "with space", "property"),
    ]:
        with pytest.raises(BillingError) as refused:
            metric_aggregation(kind, aggregation, property_name)
        assert (refused.value.code.value, refused.value.field) == ("VALIDATION", field)


def test_properties_shape():
    assert check_properties(None, "events[0]") is None
    assert check_properties({"user": "u-1", "n": -5, "ok": True, "a.b-c_d": ""}, "events[0]") is None
    assert check_properties({f"k{i}": i for i in range(20)}, "events[0]") is None
    cases = [
        ([1], "events[2].properties"),
        ({f"k{i}": i for i in range(21)}, "events[2].properties"),
        ({"bad key": 1}, "events[2].properties"),
        ({"": 1}, "events[2].properties"),
        ({"x": 1.5}, "events[2].properties.x"),
        ({"x": None}, "events[2].properties.x"),
        ({"x": {"nested": 1}}, "events[2].properties.x"),
        ({"x": [1]}, "events[2].properties.x"),
        ({"x": "y" * 257}, "events[2].properties.x"),
        ({"x": 2**53}, "events[2].properties.x"),
        ({"x": "a\x00b"}, "events[2].properties.x"),
        ({"x": "card 4242 4242 4242 4242"}, "events[2].properties.x"),
    ]
    for properties, field in cases:
        error = check_properties(properties, "events[2]")
        assert error is not None and (error.code.value, error.field) == ("VALIDATION", field), properties
    assert "4242" not in check_properties({"x": "4242424242424242"}, "events[0]").message  # never echoed


def test_event_value_per_aggregation():
    at = "events[0]"
    assert event_value(Aggregation.COUNT, None, 7, None, at, 10) == (1, None)
    assert event_value(Aggregation.SUM, None, 7, None, at, 10) == (7, None)
    assert event_value(Aggregation.SUM, "bytes", 7, {"bytes": 9}, at, 10) == (9, None)
    assert event_value(Aggregation.UNIQUE_COUNT, "user", 7, {"user": 12}, at, 10) == ("12", None)
    assert event_value(Aggregation.UNIQUE_COUNT, "flag", 0, {"flag": True}, at, 10) == ("true", None)
    assert property_text(12) == property_text("12")
    for aggregation, properties in [(Aggregation.SUM, None), (Aggregation.SUM, {"other": 1}),
                                    (Aggregation.SUM, {"bytes": -1}), (Aggregation.SUM, {"bytes": "9"}),
                                    (Aggregation.MAX, {"bytes": True}), (Aggregation.LATEST, {"bytes": 11}),
                                    (Aggregation.UNIQUE_COUNT, {})]:
        value, error = event_value(aggregation, "bytes", 1, properties, at, 10)
        assert value is None and error.field == "events[0].properties.bytes", (aggregation, properties)


def test_check_batch_refuses_events_whose_properties_do_not_fit_and_keeps_the_others():
    metrics = {"active_users": MetricInfo("u", "active_users", False, Aggregation.UNIQUE_COUNT, "user"),
               "peak": MetricInfo("p", "peak", False, Aggregation.MAX, None)}
    batch = check_batch([
        EventInput("active_users", 0, T, "a", {"user": "ann"}),
        EventInput("active_users", 0, T, "b", {"who": "bob"}),
        EventInput("peak", 4, T, "c", {"x": 1.5}),
        EventInput("peak", 3, T, "d"),
    ], metrics, T)
    assert [checked.value for checked in batch.accepted] == ["ann", 3]
    assert [error.field for error in batch.errors] == ["events[1].properties.user", "events[2].properties.x"]


AGGREGATIONS = list(Aggregation)
history = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), min_size=1, max_size=40)


@given(st.sampled_from(AGGREGATIONS), history, st.data())
def test_batches_merged_incrementally_equal_the_whole_history(aggregation, raw, data):
    """Any split of the recorded events into consecutive batches, each folded then merged as the
    database merges it, ends at the aggregate of the whole history."""
    events: list[tuple[datetime, int | str]] = [
        (T + timedelta(minutes=minute), 1 if aggregation is Aggregation.COUNT
         else f"v{value}" if aggregation is Aggregation.UNIQUE_COUNT else value)
        for minute, value in raw]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=len(events) - 1))
                  if len(events) > 1 else set())
    stored: Stored | None = None
    for start, end in zip([0, *cuts], [*cuts, len(events)]):
        stored = merge(aggregation, stored, events[start:end])
    assert stored is not None and stored.value == aggregate(aggregation, events)


@given(history)
def test_latest_ignores_an_older_event_arriving_later(raw):
    events = [(T + timedelta(minutes=minute), value) for minute, value in raw]
    newest = max(events, key=lambda event: event[0])
    stored = merge(Aggregation.LATEST, None, [newest])
    stale = [(newest[0] - timedelta(seconds=1), newest[1] + 1)]
    assert merge(Aggregation.LATEST, stored, stale) == stored


@given(st.lists(st.integers(0, 5), max_size=30), st.lists(st.integers(0, 5), max_size=30))
def test_unique_count_counts_a_value_once_across_batches(first, second):
    stored = merge(Aggregation.UNIQUE_COUNT, None, [(T, str(value)) for value in first])
    stored = merge(Aggregation.UNIQUE_COUNT, stored, [(T, str(value)) for value in second])
    assert stored.value == len(set(first) | set(second))


@given(history, history)
def test_max_never_decreases_and_sum_adds(first, second):
    one = merge(Aggregation.MAX, None, [(T, value) for _, value in first])
    two = merge(Aggregation.MAX, one, [(T, value) for _, value in second])
    assert two.value >= one.value and two.value == max(value for _, value in first + second)
    total = merge(Aggregation.SUM, merge(Aggregation.SUM, None, [(T, v) for _, v in first]), [(T, v) for _, v in second])
    assert total.value == sum(value for _, value in first + second)
