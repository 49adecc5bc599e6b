"""Usage rules: billing months, event validation, folding a batch, limits and thresholds.

A metric is aggregated per billing month (``domain.aggregation``: COUNT, SUM, MAX, UNIQUE_COUNT,
LATEST; a COUNTER of before aggregations is SUM of ``quantity``). A billing month is anchored on
the subscription's period anchor (the same day each month, clamped to the month's end, as
periods are); without a subscription it is the calendar month. Its key is the ``YYYY-MM`` of the
month it starts in, so each billing month has exactly one key. A GAUGE (LATEST) also keeps one
value under ``current``: the last one observed, by event timestamp, whatever its month.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing_graphql.domain.aggregation import (
    Aggregation,
    Folded,
    check_properties,
    event_value,
    fold_value,
)
from billing_graphql.domain.clock import require_utc
from billing_graphql.domain.errors import BillingError, validation
from billing_graphql.domain.periods import Period, add_months

GAUGE_KEY = "current"
MAX_EVENTS_PER_BATCH = 1000
MAX_PAST = timedelta(days=35)
MAX_FUTURE = timedelta(minutes=5)
MAX_KEY_LENGTH = 200
# The range of usage, end to end: a COUNTER event's quantity is at most 2^53 - 1 (the largest
# integer a JSON number holds exactly in every client) and a counter at most 2^63 - 1 (a signed
# 64-bit column; a batch that would pass it is refused whole), both shown by GraphQL as ``BigInt``
# strings; a GAUGE (a current count: agents, contacts, ...) is at most 2^31 - 1, a GraphQL ``Int``.
# 1,024 events of the maximum fit in one counter.
MAX_EVENT_QUANTITY = 2**53 - 1
MAX_GAUGE_VALUE = 2**31 - 1
MAX_COUNTER_VALUE = 2**63 - 1
THRESHOLDS = (80, 100)  # percent of a limit that writes one event each per billing month
THRESHOLD_EVENTS = {80: "usage.limit_approaching", 100: "usage.limit_reached"}
MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def month_key(start: datetime) -> str:
    """The key of the billing month starting at ``start``: its ``YYYY-MM`` in UTC. The one month
    key: ingestion writes counters under it, ``usage`` reads them with it, and the renewal's
    overage (``domain.overage.usage_month_keys``) bills the keys of the ended period's months."""
    start = start.astimezone(UTC)
    return f"{start.year:04d}-{start.month:02d}"


def calendar_month(instant: datetime) -> Period:
    start = instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Period(start, add_months(start, 1))


def billing_month(anchor: datetime | None, instant: datetime) -> Period:
    """The billing month containing ``instant``: anchored on ``anchor`` (before it or after), or
    the calendar month when there is no anchor."""
    require_utc(instant, "instant")
    if anchor is None:
        return calendar_month(instant)
    require_utc(anchor, "anchor")
    index = (instant.year - anchor.year) * 12 + (instant.month - anchor.month) - 1
    while add_months(anchor, index + 1) <= instant:
        index += 1
    while add_months(anchor, index) > instant:
        index -= 1
    return Period(add_months(anchor, index), add_months(anchor, index + 1))


def usage_period(anchor: datetime | None, now: datetime, month: datetime | None = None) -> Period:
    """What "the month" of usage means, for tenants (``usage``) and partners (``usageSnapshots``)
    alike: the billing month in force at ``now``; with ``month`` (a calendar month's first
    instant, ``parse_month``) the billing month that starts in that calendar month (exactly one
    does: each is ``add_months(anchor, k)`` for its own k). Calendar months without an anchor."""
    if month is None:
        return billing_month(anchor, now)
    found = billing_month(anchor, month)
    if (found.start.year, found.start.month) != (month.year, month.month):
        found = billing_month(anchor, found.end)
    return found


def parse_month(value: str, field: str = "month") -> datetime:
    """The first instant of a ``YYYY-MM`` month (UTC); VALIDATION otherwise."""
    match = MONTH_PATTERN.match(value or "")
    if match is None:
        raise validation("A month is written YYYY-MM (e.g. 2026-03).", field)
    return datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EventInput:
    metric: str
    quantity: int
    timestamp: datetime
    idempotency_key: str
    properties: dict | None = None  # see domain.aggregation (at most 20; string, integer, boolean)


@dataclass(frozen=True, slots=True)
class MetricInfo:
    id: object
    code: str
    is_gauge: bool
    aggregation: Aggregation | None = None  # None: SUM of quantity (COUNTER) or LATEST (GAUGE)
    property_name: str | None = None

    @property
    def aggregated_as(self) -> Aggregation:
        if self.aggregation is not None:
            return self.aggregation
        return Aggregation.LATEST if self.is_gauge else Aggregation.SUM


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An accepted event, its timestamp in UTC, with the value it adds to its metric."""

    event: EventInput
    metric: MetricInfo
    value: int | str


def check_event(
    index: int, event: EventInput, metrics: dict[str, MetricInfo], now: datetime
) -> BillingError | int | str:
    """The first problem with one event, as a VALIDATION error naming ``events[i].field``; else
    the value it adds to its metric (``domain.aggregation.event_value``)."""
    at = f"events[{index}]"
    key = event.idempotency_key
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH or _CONTROL.search(key):
        return validation(f"idempotencyKey: 1 to {MAX_KEY_LENGTH} printable characters.", f"{at}.idempotencyKey")
    if not isinstance(event.metric, str) or event.metric not in metrics:
        return validation(f"Unknown metric {str(event.metric)[:64]!r}.", f"{at}.metric")
    if not isinstance(event.quantity, int) or isinstance(event.quantity, bool) or event.quantity < 0:
        return validation("quantity must be a whole number, 0 or more.", f"{at}.quantity")
    maximum = MAX_GAUGE_VALUE if metrics[event.metric].is_gauge else MAX_EVENT_QUANTITY
    if event.quantity > maximum:
        return validation(f"quantity is at most {maximum} for {event.metric}.", f"{at}.quantity")
    error = check_properties(event.properties, at)
    if error is not None:
        return error
    metric = metrics[event.metric]
    value, error = event_value(metric.aggregated_as, metric.property_name, event.quantity, event.properties, at, maximum)
    if error is not None:
        return error
    stamp = event.timestamp
    if not isinstance(stamp, datetime) or stamp.tzinfo is None:
        return validation("timestamp must be a date-time with a time zone.", f"{at}.timestamp")
    stamp = stamp.astimezone(UTC)
    if stamp < now - MAX_PAST:
        return validation("timestamp is more than 35 days in the past.", f"{at}.timestamp")
    if stamp > now + MAX_FUTURE:
        return validation("timestamp is more than 5 minutes in the future.", f"{at}.timestamp")
    return value  # type: ignore[return-value]


@dataclass(slots=True)
class Batch:
    """A checked batch: the events to insert (first occurrence of each key), the duplicate count
    within the batch, and the errors of refused events."""

    accepted: list[CheckedEvent]
    duplicates_in_batch: int
    errors: list[BillingError]


def check_batch(events: Sequence[EventInput], metrics: dict[str, MetricInfo], now: datetime) -> Batch:
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise validation(f"At most {MAX_EVENTS_PER_BATCH} events per call (got {len(events)}).", "events")
    accepted: list[CheckedEvent] = []
    errors: list[BillingError] = []
    seen: set[str] = set()
    duplicates = 0
    for index, event in enumerate(events):
        value = check_event(index, event, metrics, now)
        if isinstance(value, BillingError):
            errors.append(value)
            continue
        if event.idempotency_key in seen:
            duplicates += 1
            continue
        seen.add(event.idempotency_key)
        accepted.append(CheckedEvent(EventInput(event.metric, event.quantity, event.timestamp.astimezone(UTC),
                                                event.idempotency_key, event.properties or None),
                                     metrics[event.metric], value))
    return Batch(accepted=accepted, duplicates_in_batch=duplicates, errors=errors)


def fold(events: Iterable[CheckedEvent], anchor: datetime | None) -> Folded:
    """A batch's increments per (metric id, key) (``domain.aggregation.Folded``): each event
    under the key of its billing month, a GAUGE's also under ``GAUGE_KEY`` (its value across
    months, the one limits and the seat count read)."""
    folded = Folded()
    months: list[tuple[datetime, datetime, str]] = []  # the billing months seen (a batch spans one or two)
    for checked in events:
        stamp = checked.event.timestamp
        month = next((key for start, end, key in months if start <= stamp < end), None)
        if month is None:
            period = billing_month(anchor, stamp)
            month = month_key(period.start)
            months.append((period.start, period.end, month))
        metric = checked.metric
        keys = (month, GAUGE_KEY) if metric.is_gauge else (month,)
        fold_value(folded, metric.aggregated_as, metric.id, keys, stamp, checked.value)
    return folded


@dataclass(frozen=True, slots=True)
class LimitUse:
    used: int
    limit: int | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def overage(self) -> int:
        return 0 if self.limit is None else max(self.used - self.limit, 0)

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.used > self.limit

    @property
    def percent_used(self) -> Decimal | None:
        if self.limit is None:
            return None
        if self.limit == 0:
            return Decimal("0.00") if self.used == 0 else Decimal("100.00")
        return (Decimal(self.used) * 100 / Decimal(self.limit)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def thresholds_reached(used: int, limit: int | None) -> list[int]:
    """The thresholds (percent of the limit) ``used`` has reached; none without usage or limit."""
    if limit is None or used <= 0:
        return []
    return [threshold for threshold in THRESHOLDS if used * 100 >= limit * threshold]
