"""Usage overage of an ended period, and the spending cap on it (pure).

COUNTER metrics are counted per calendar month (usage counters keyed ``"YYYY-MM"``, UTC). A
month belongs to the billing period in which it ends: the months whose last instant (the
first instant of the next month) falls in ``(period.start, period.end]``. Every month so
belongs to exactly one period, and it is complete when that period ends. A monthly period
holds one month (Jan 15 -> Feb 15 holds January; Jan 31 -> Feb 28 January; Feb 28 -> Mar 31
February), an annual one twelve (Feb 29, 2024 -> Feb 28, 2025: February 2024 to January 2025).

Overage of a metric = for each of those months, usage above the plan's monthly limit, summed;
priced at the plan's overage price per unit. The spending cap (seed 004's capped amount)
bounds seats beyond the included agents plus overage: overage is capped at
``cap - seats`` (never below 0; the cap's minimum is what the seats cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billing_graphql.domain.periods import Period, add_months


def month_key(instant: datetime) -> str:
    """The usage counter period key of the calendar month holding ``instant`` (UTC)."""
    return instant.astimezone(UTC).strftime("%Y-%m")


def usage_month_keys(period: Period) -> list[str]:
    """Keys of the billing months of ``period``: one per calendar month it spans from its start (a
    monthly period one, an annual one twelve, a trial shorter than a month none), each the
    ``domain.usage.month_key`` of that billing month's start, as usage ingestion counts COUNTER
    events (months anchored on the subscription like its periods)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    months = (end.year - start.year) * 12 + end.month - start.month
    return [month_key(add_months(start, index)) for index in range(months)]


@dataclass(frozen=True, slots=True)
class MetricOverage:
    code: str
    name: str
    units: int  # usage above the limit, summed over the period's months
    amount: int  # units x price, before the cap


def metric_overage(code: str, name: str, monthly_usage: list[int], limit: int | None, unit_price: int) -> MetricOverage:
    """Usage above ``limit`` in each month, summed and priced (no limit: no overage)."""
    if unit_price < 0:
        raise ValueError("an overage price is never negative")
    if limit is None:
        return MetricOverage(code, name, 0, 0)
    units = sum(max(used - limit, 0) for used in monthly_usage)
    return MetricOverage(code, name, units, units * unit_price)


def cap_overage(overages: list[MetricOverage], seats_amount: int, cap: int | None) -> list[int]:
    """The billed amount of each overage once seats plus overage stay within ``cap``.

    The room left by the seats (``cap - seats``, at least 0) is spent in the order given.
    """
    if cap is None:
        return [overage.amount for overage in overages]
    room = max(cap - seats_amount, 0)
    billed: list[int] = []
    for overage in overages:
        amount = min(overage.amount, room)
        billed.append(amount)
        room -= amount
    return billed
