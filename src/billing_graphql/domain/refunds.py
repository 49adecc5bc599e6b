"""Refund rules: how much may be refunded, how a refund spreads over payments, and the
invoice status the refunded amount implies."""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from typing import TypeVar

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.status import InvoiceStatus

K = TypeVar("K", bound=Hashable)

class RefundStatus(enum.Enum):
    """Where a refund stands at the gateway (a refund row's payment status, as clients see it)."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


REFUNDABLE_STATUSES = frozenset({InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED})


def refund_amount(requested: int | None, *, amount_paid: int, amount_refunded: int) -> int:
    """The amount to refund: everything still refundable when ``requested`` is None.

    More than zero and at most paid minus already refunded, else REFUND_EXCEEDS_PAID.
    """
    refundable = amount_paid - amount_refunded
    if refundable <= 0:
        raise BillingError(BillingErrorCode.NOT_REFUNDABLE, "Nothing is left to refund on this invoice.")
    amount = refundable if requested is None else requested
    if amount <= 0 or amount > refundable:
        raise BillingError(
            BillingErrorCode.REFUND_EXCEEDS_PAID,
            "The refund amount must be more than zero and at most what was paid and not yet refunded.",
            field="amount",
            refundable=refundable,
        )
    return amount


def allocate_refund(available: Sequence[tuple[K, int]], amount: int) -> list[tuple[K, int]]:
    """Spread ``amount`` over payments in the order given, each up to what it still has.

    ``available`` pairs a payment's key with its refundable amount. The parts are positive,
    each within its payment's available amount, and add up to ``amount``; when the payments
    cannot cover it, NOT_REFUNDABLE.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    parts: list[tuple[K, int]] = []
    remaining = amount
    for key, left in available:
        if remaining == 0:
            break
        if left <= 0:
            continue
        part = min(left, remaining)
        parts.append((key, part))
        remaining -= part
    if remaining:
        raise BillingError(
            BillingErrorCode.NOT_REFUNDABLE,
            "The invoice's successful payments do not cover this refund.",
        )
    return parts


def status_after_refund(*, amount_paid: int, amount_refunded: int) -> InvoiceStatus:
    """PAID with nothing refunded, REFUNDED when all of it is, PARTIALLY_REFUNDED between."""
    if not 0 <= amount_refunded <= amount_paid:
        raise ValueError("refunded must be between 0 and paid")
    if amount_refunded == 0:
        return InvoiceStatus.PAID
    if amount_refunded == amount_paid:
        return InvoiceStatus.REFUNDED
    return InvoiceStatus.PARTIALLY_REFUNDED
