"""How long a coupon keeps discounting a subscription's period invoices (pure).

The subscription keeps ``coupon_periods_remaining``: ONCE starts at 1, REPEATING at its
``duration_in_months``, FOREVER at None (never runs out). It counts months: a period invoice
uses the coupon while something remains, and then spends the period's months (1 for a monthly
period, 12 for an annual one), so a REPEATING 3-month coupon discounts the first three monthly
invoices, or the first annual invoice only (as Stripe applies repeating coupons). ONCE so
discounts the first invoice, whatever its period.
"""

from __future__ import annotations


def coupon_applies(remaining: int | None, *, has_coupon: bool) -> bool:
    return has_coupon and (remaining is None or remaining > 0)


def remaining_after(remaining: int | None, months: int) -> int | None:
    """What remains after a period invoice of ``months`` months used the coupon (None: forever)."""
    if months < 1:
        raise ValueError("a period has at least one month")
    if remaining is None:
        return None
    return max(remaining - months, 0)
