"""A range of whole days a caller asks for (``from``..``to``, both included): an export, a report.

One rule for every door that takes one (the payments and invoices CSV exports, ``analytics``):
``from`` is not after ``to``, and ``to`` is before 9999-12-31, so that the instant ending the range
(the day after ``to``, 00:00) exists. Checked where the input enters, before anything is read or
streamed. The exports take the days in the book's time zone (BILLING_TIMEZONE): ``day_range``
turns them into UTC instants and ``day_of`` tells the day an instant falls on there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from billing_graphql.domain.errors import validation


def check_day_range(first: date, last: date, *, first_name: str = "from", last_name: str = "to") -> None:
    """Raise ``VALIDATION`` (naming the field) unless ``first``..``last`` is a range this gateway reads."""
    if last >= date.max:
        raise validation(f"'{last_name}' must be before {date.max.isoformat()}.", last_name)
    if first > last:
        raise validation(f"'{first_name}' ({first.isoformat()}) is after '{last_name}' ({last.isoformat()}).",
                         first_name)


def _utc(day: date, zone: tzinfo) -> datetime:
    """00:00 of ``day`` in ``zone``, as UTC; clamped at the ends of the calendar (0001-01-01 in a
    zone east of UTC starts before the first instant Python has)."""
    local = datetime.combine(day, time.min, tzinfo=zone)
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if day.year == 1 else datetime.max.replace(tzinfo=UTC)


def day_range(start: date, end: date, timezone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in ``timezone``, as UTC instants: both days included."""
    return _utc(start, timezone), _utc(end + timedelta(days=1), timezone)


def day_of(value: datetime, timezone: tzinfo = UTC) -> date:
    """The day the aware instant ``value`` falls on in ``timezone``."""
    return value.astimezone(timezone).date()
