"""The billing months of an ended period, and the spending cap on its usage lines (pure).

COUNTER metrics are counted per billing month (usage counters keyed by
``domain.usage.month_key``: the ``YYYY-MM`` of the billing month's start, months anchored on
the subscription like its periods). The billing months of a period are the ones that start in
it: a monthly period holds one (Jan 15 -> Feb 15 holds "2026-01"; Jan 31 -> Feb 28 "2026-01";
Feb 28 -> Mar 31 "2026-02"), an annual one twelve (Feb 29, 2024 -> Feb 28, 2025: "2024-02" to
"2025-01"), a trial shorter than a month none. Every billing month so belongs to exactly one
period, and it is complete when that period ends.

Usage is priced by the plan's charges (``domain.charges``; ``overageMessagePrice`` is the
STANDARD charge on ``messages`` with the messages limit included). The spending cap (seed 004's
capped amount) bounds seats beyond the included agents plus the period's usage lines: usage is
capped at ``cap - seats`` (never below 0; the cap's minimum is what the seats cost).
"""

from __future__ import annotations

from datetime import UTC

from billing_graphql.domain.periods import Period, add_months
from billing_graphql.domain.usage import month_key


def usage_month_keys(period: Period) -> list[str]:
    """Keys of the billing months of ``period``: one per calendar month it spans from its start (a
    monthly period one, an annual one twelve, a trial shorter than a month none), each the
    ``domain.usage.month_key`` of that billing month's start, as usage ingestion counts COUNTER
    events (months anchored on the subscription like its periods)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    months = (end.year - start.year) * 12 + end.month - start.month
    return [month_key(add_months(start, index)) for index in range(months)]


def cap_usage(amounts: list[int], seats_amount: int, cap: int | None) -> list[int]:
    """The billed amount of each usage line once seats plus usage stay within ``cap``.

    The room left by the seats (``cap - seats``, at least 0) is spent in the order given.
    """
    if cap is None:
        return list(amounts)
    room = max(cap - seats_amount, 0)
    billed: list[int] = []
    for amount in amounts:
        spent = min(amount, room)
        billed.append(spent)
        room -= spent
    return billed
