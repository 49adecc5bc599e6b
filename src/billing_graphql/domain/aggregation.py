"""How a metric aggregates its events, and the properties an event may carry (pure).

A metric aggregates its events per billing month (``domain.usage.month_key``) in one of five ways:

- ``COUNT``: the number of events (it takes no property);
- ``SUM``: the sum of ``quantity``, or of the integer property ``property`` (kind COUNTER: SUM of
  ``quantity``, as every COUNTER metric was before aggregations);
- ``MAX``: the largest ``quantity``, or the largest value of the integer property;
- ``UNIQUE_COUNT``: the number of distinct values of the property (required) in the month,
  exactly: the values are kept under a unique index and the count grows only when one is new;
- ``LATEST``: the last value by ``timestamp`` (not by arrival: an older event arriving later
  changes nothing), of ``quantity`` or of the integer property (kind GAUGE is LATEST of
  ``quantity``; it also keeps the value across months under ``GAUGE_KEY``).

``kind`` stays readable: GAUGE is exactly LATEST, COUNTER every other aggregation.

Properties (``UsageEventInput.properties``): a JSON object of at most 20 keys; a key is 1 to 64
letters, digits, ``_``, ``-`` or ``.``, starting with a letter or ``_``; a value is a string of at
most 256 characters (text rules of ``domain.text``: no control characters, no card number), an
integer of at most 2^53 - 1 either side of 0, or a boolean. A property a metric aggregates must be
present on each of its events: an integer from 0 for SUM, MAX and LATEST (within the quantity's
range), any value for UNIQUE_COUNT, whose values are compared as text (``1`` and ``"1"`` are the same
value, ``true`` is ``"true"``).

``fold_batch`` folds a batch of events into increments, and ``merge`` is what the database does
with one increment (``services.usage.ingest``: ``value + x``, ``GREATEST``, a later timestamp
wins, a unique index); ``aggregate`` is the whole-history definition both must agree with (the
property tests split a history into batches in every way).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from billing_graphql.domain.errors import BillingError, validation
from billing_graphql.domain.text import text_refusal


class MetricKind(enum.Enum):
    GAUGE = "GAUGE"  # a current count (agents, contacts): LATEST
    COUNTER = "COUNTER"  # per billing month (messages, api calls): every other aggregation


class Aggregation(enum.Enum):
    COUNT = "COUNT"
    SUM = "SUM"
    MAX = "MAX"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    LATEST = "LATEST"


MAX_PROPERTIES = 20
MAX_PROPERTY_TEXT = 256
MAX_PROPERTY_INTEGER = 2**53 - 1
PROPERTY_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
# What an aggregated value may be at most: a COUNTER event's quantity, a GAUGE's value (see
# ``domain.usage``); the integer property of a SUM, MAX or LATEST metric is bounded alike.
NUMERIC = (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST)


def kind_of(aggregation: Aggregation) -> MetricKind:
    return MetricKind.GAUGE if aggregation is Aggregation.LATEST else MetricKind.COUNTER


def check_property_name(name: str | None, field: str = "property") -> str:
    if not isinstance(name, str) or not PROPERTY_KEY.fullmatch(name):
        raise validation("A property name is 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or "
                         "'_'.", field)
    return name


def metric_aggregation(
    kind: MetricKind | None, aggregation: Aggregation | None, property_name: str | None
) -> tuple[MetricKind, Aggregation, str | None]:
    """The kind, aggregation and property of a new metric: ``aggregation`` (or ``kind`` alone:
    COUNTER is SUM of ``quantity``, GAUGE is LATEST), checked against each other and the property."""
    if aggregation is None:
        if kind is None:
            raise validation("aggregation is required (or kind: COUNTER is SUM, GAUGE is LATEST).", "aggregation")
        aggregation = Aggregation.LATEST if kind is MetricKind.GAUGE else Aggregation.SUM
    if kind is not None and kind is not kind_of(aggregation):
        raise validation(f"kind {kind.value} does not go with aggregation {aggregation.value}: GAUGE is LATEST, "
                         "COUNTER any other aggregation.", "kind")
    if property_name is not None:
        check_property_name(property_name)
        if aggregation is Aggregation.COUNT:
            raise validation("COUNT counts events: it takes no property.", "property")
    elif aggregation is Aggregation.UNIQUE_COUNT:
        raise validation("UNIQUE_COUNT needs the property whose distinct values it counts.", "property")
    return kind_of(aggregation), aggregation, property_name


def check_properties(properties: Any, at: str) -> BillingError | None:
    """The first problem with an event's properties (``at``: ``events[i]``), naming
    ``events[i].properties`` or ``events[i].properties.<key>``; None when they may be recorded."""
    if properties is None:
        return None
    field_name = f"{at}.properties"
    if not isinstance(properties, dict):
        return validation("properties must be a JSON object.", field_name)
    if len(properties) > MAX_PROPERTIES:
        return validation(f"At most {MAX_PROPERTIES} properties an event (got {len(properties)}).", field_name)
    for key, value in properties.items():
        if not _valid_key(key):
            return validation("A property name is 1 to 64 letters, digits, '_', '-' or '.', starting with a letter "
                              "or '_'.", field_name)
        problem = _value_problem(value)
        if problem is not None:
            return validation(problem, f"{field_name}.{key}")
    return None


@lru_cache(maxsize=1024)  # the same few property names, event after event
def _valid_key(key: Any) -> bool:
    return isinstance(key, str) and PROPERTY_KEY.fullmatch(key) is not None


def _value_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -MAX_PROPERTY_INTEGER <= value <= MAX_PROPERTY_INTEGER:
            return None
        return f"An integer property is at most {MAX_PROPERTY_INTEGER} either side of 0."
    if isinstance(value, str):
        if len(value) > MAX_PROPERTY_TEXT:
            return f"A text property is at most {MAX_PROPERTY_TEXT} characters."
        return _text_problem(value) if len(value) <= 64 else _text_problem.__wrapped__(value)
    return "A property is a string, an integer or a boolean."


@lru_cache(maxsize=4096)  # a batch repeats its property values (channels, regions, plans) many times
def _text_problem(value: str) -> str | None:
    reason = text_refusal(value)
    return None if reason is None else reason[0].upper() + reason[1:] + "."


def property_text(value: str | int | bool) -> str:
    """A property value as UNIQUE_COUNT compares it: ``1`` and ``"1"`` are one value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def event_value(
    aggregation: Aggregation, property_name: str | None, quantity: int, properties: Mapping[str, Any] | None,
    at: str, maximum: int,
) -> tuple[int | str | None, BillingError | None]:
    """What one event adds to its metric (COUNT: 1; SUM, MAX, LATEST: the quantity or the integer
    property; UNIQUE_COUNT: the property's text), or the error refusing the event."""
    if aggregation is Aggregation.COUNT:
        return 1, None
    if property_name is None:
        return quantity, None
    field_name = f"{at}.properties.{property_name}"
    if not properties or property_name not in properties:
        return None, validation(f"This metric aggregates the property {property_name!r}: it is required.", field_name)
    value = properties[property_name]
    if aggregation is Aggregation.UNIQUE_COUNT:
        return property_text(value), None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        return None, validation(f"{property_name} must be an integer from 0 to {maximum} for this metric.",
                                field_name)
    return value, None


@dataclass(slots=True)
class Folded:
    """A batch's increments per (metric id, period key): ``added`` is added to the stored value
    (SUM, COUNT), ``maxima`` kept when larger (MAX), ``latest`` kept when its timestamp is not older
    (LATEST, under month keys and ``GAUGE_KEY``), ``distinct`` inserted unless present
    (UNIQUE_COUNT: each insertion adds one to the value)."""

    added: dict[tuple[Any, str], int] = field(default_factory=dict)
    maxima: dict[tuple[Any, str], int] = field(default_factory=dict)
    latest: dict[tuple[Any, str], tuple[datetime, int]] = field(default_factory=dict)
    distinct: set[tuple[Any, str, str]] = field(default_factory=set)


def fold_value(folded: Folded, aggregation: Aggregation, metric_id: Any, keys: Iterable[str],
               stamp: datetime, value: int | str) -> None:
    """Fold one event's value into ``folded`` under each of ``keys`` (its month, and
    ``GAUGE_KEY`` for a GAUGE)."""
    for key in keys:
        slot = (metric_id, key)
        if aggregation is Aggregation.UNIQUE_COUNT:
            folded.distinct.add((metric_id, key, value))
        elif aggregation is Aggregation.MAX:
            previous = folded.maxima.get(slot)
            folded.maxima[slot] = value if previous is None else max(previous, value)
        elif aggregation is Aggregation.LATEST:
            previous_latest = folded.latest.get(slot)
            if previous_latest is None or stamp >= previous_latest[0]:  # a tie keeps the later event
                folded.latest[slot] = (stamp, value)
        else:  # SUM, COUNT
            folded.added[slot] = folded.added.get(slot, 0) + value


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored aggregate: its value, the time of the value (LATEST) and the distinct values
    seen (UNIQUE_COUNT; the unique index's rows)."""

    value: int = 0
    stamp: datetime | None = None
    seen: frozenset[str] = frozenset()


def merge(aggregation: Aggregation, stored: Stored | None, increments: list[tuple[datetime, int | str]]) -> Stored:
    """What the database does with one batch's events of one slot (``fold_value`` then the
    upsert): the pure mirror of ``services.usage.ingest``'s statements."""
    folded = Folded()
    for stamp, value in increments:
        fold_value(folded, aggregation, "m", ["k"], stamp, value)
    if stored is None:
        stored = Stored()
        fresh = True
    else:
        fresh = False
    if aggregation is Aggregation.UNIQUE_COUNT:
        values = {value for _, _, value in folded.distinct}
        new = values - stored.seen
        return Stored(stored.value + len(new), None, stored.seen | new)
    if aggregation is Aggregation.MAX:
        if ("m", "k") not in folded.maxima:
            return stored
        candidate = folded.maxima[("m", "k")]
        return Stored(candidate if fresh else max(stored.value, candidate))
    if aggregation is Aggregation.LATEST:
        if ("m", "k") not in folded.latest:
            return stored
        stamp, value = folded.latest[("m", "k")]
        if fresh or stored.stamp is None or stored.stamp <= stamp:
            return Stored(value, stamp)
        return stored
    return Stored(stored.value + folded.added.get(("m", "k"), 0))


def aggregate(aggregation: Aggregation, events: list[tuple[datetime, int | str]]) -> int | None:
    """The aggregate of a whole history, events in the order they were recorded (None: no event)."""
    if not events:
        return None
    if aggregation is Aggregation.COUNT:
        return len(events)
    if aggregation is Aggregation.SUM:
        return sum(value for _, value in events)  # type: ignore[misc]
    if aggregation is Aggregation.MAX:
        return max(value for _, value in events)  # type: ignore[type-var]
    if aggregation is Aggregation.UNIQUE_COUNT:
        return len({value for _, value in events})
    # LATEST: the greatest timestamp; among equal ones, the last recorded.
    latest = max(range(len(events)), key=lambda index: (events[index][0], index))
    return events[latest][1]  # type: ignore[return-value]
