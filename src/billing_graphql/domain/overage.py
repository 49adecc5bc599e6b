"""Usage overage of an ended period, and the spending cap on it (pure).

COUNTER metrics are counted per billing month (usage counters keyed by
``domain.usage.month_key``: the ``YYYY-MM`` of the billing month's start, months anchored on
the subscription like its periods). The billing months of a period are the ones that start in
it: a monthly period holds one (Jan 15 -> Feb 15 holds "2026-01"; Jan 31 -> Feb 28 "2026-01";
Feb 28 -> Mar 31 "2026-02"), an annual one twelve (Feb 29, 2024 -> Feb 28, 2025: "2024-02" to
"2025-01"), a trial shorter than a month none. Every billing month so belongs to exactly one
period, and it is complete when that period ends.

Overage of a metric = for each of those months, usage above the plan's monthly limit, summed;
priced at the metric's own unit price (``overage_unit_price``: only ``messages`` has one, the
plan's ``overageMessagePrice``; a metric without a price is limited, not charged). The spending
cap (seed 004's capped amount) bounds seats beyond the included agents plus overage: overage is
capped at ``cap - seats`` (never below 0; the cap's minimum is what the seats cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from billing_graphql.domain.periods import Period, add_months
from billing_graphql.domain.usage import month_key

PRICED_BY_OVERAGE_MESSAGE_PRICE = "messages"


def overage_unit_price(metric_code: str, overage_message_price: int) -> int | None:
    """What one unit of ``metric_code`` above its limit costs: ``overageMessagePrice`` for
    ``messages`` (the STANDARD charge on messages), None (not charged) for any other metric."""
    if overage_message_price < 0:
        raise ValueError("an overage price is never negative")
    if metric_code != PRICED_BY_OVERAGE_MESSAGE_PRICE or overage_message_price == 0:
        return None
    return overage_message_price


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
