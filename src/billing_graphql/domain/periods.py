"""Billing periods anchored on the subscription's start.

Monthly periods add calendar months to the anchor, keeping the anchor's day and clamping to
the month's end (Jan 31 -> Feb 28 -> Mar 31); annual periods add twelve months. Every period
boundary is computed from the anchor, never from the previous boundary, so clamping in a short
month does not drift the day of later periods.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import datetime

from billing_graphql.domain.clock import require_utc


class BillingPeriod(enum.Enum):
    MONTHLY = "MONTHLY"
    ANNUAL = "ANNUAL"

    @property
    def months(self) -> int:
        return 1 if self is BillingPeriod.MONTHLY else 12


def add_months(anchor: datetime, months: int) -> datetime:
    """The anchor moved by whole calendar months, its day clamped to the target month's end."""
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_utc(self.start, "start")
        require_utc(self.end, "end")
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def period_at(anchor: datetime, billing_period: BillingPeriod, index: int) -> Period:
    """The index-th period (0 = the first) of a subscription anchored at ``anchor``."""
    if index < 0:
        raise ValueError("period index must be >= 0")
    return Period(boundary(anchor, billing_period, index), boundary(anchor, billing_period, index + 1))


def boundary(anchor: datetime, billing_period: BillingPeriod, index: int) -> datetime:
    """Where the index-th period of a schedule anchored at ``anchor`` starts (and the one before ends)."""
    return add_months(anchor, index * billing_period.months)


def period_containing(anchor: datetime, billing_period: BillingPeriod, instant: datetime) -> Period:
    """The period of an anchored schedule that contains ``instant`` (which is not before the anchor)."""
    require_utc(anchor, "anchor")
    require_utc(instant, "instant")
    if instant < anchor:
        raise ValueError("instant is before the anchor")
    step = billing_period.months
    months_between = (instant.year - anchor.year) * 12 + (instant.month - anchor.month)
    index = max(months_between // step - 1, 0)
    start = boundary(anchor, billing_period, index)  # period_at's, each boundary computed once
    while True:
        end = boundary(anchor, billing_period, index + 1)
        if start <= instant < end:
            return Period(start, end)
        start, index = end, index + 1
