"""Credit notes and the manual end states of an invoice (void, uncollectible): pure rules.

A credit note corrects a finalized invoice by an amount, tax included. Its tax is the invoice's
tax in the same proportion, rounded once (half up), and clamped so that, over all the invoice's
credit notes, neither the tax reversed passes the invoice's tax nor the net part passes its
net part (total - tax): the note that credits what is left carries exactly the tax left.

    55,500 credited on a 111,000 invoice with 11,000 PPN carries 5,500 PPN.

What a note may do depends on the invoice's status:

- OPEN, UNCOLLECTIBLE: REDUCE_AMOUNT_DUE only (nothing was paid to refund or to turn into
  credit); at most the amount still due. An invoice whose amount due reaches zero is PAID.
- PAID, PARTIALLY_REFUNDED: REFUND (within what was paid and not refunded, the refund rules)
  or CREDIT_BALANCE.
- REFUNDED: CREDIT_BALANCE only.
- DRAFT, VOID: no credit note (INVALID_TRANSITION).

In all, credit notes never credit more than the invoice's total (``creditable``).
Invoice statuses stay the payment statuses (no PARTIALLY_CREDITED/CREDITED): ``amountCredited``
says how much of an invoice is credited.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.proration import round_half_up
from billing_graphql.domain.status import InvoiceStatus

MAX_MEMO_LENGTH = 500
MAX_LINES = 100


class CreditNoteReason(enum.Enum):
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"
    ORDER_CHANGE = "ORDER_CHANGE"
    PRODUCT_UNSATISFACTORY = "PRODUCT_UNSATISFACTORY"
    OTHER = "OTHER"


class CreditNoteOutcome(enum.Enum):
    """Where the credited amount goes."""

    REFUND = "REFUND"  # back through the processor, as a refund of the invoice's payments
    CREDIT_BALANCE = "CREDIT_BALANCE"  # to the organization's account balance
    REDUCE_AMOUNT_DUE = "REDUCE_AMOUNT_DUE"  # off what an unpaid invoice still asks for


class CreditNoteStatus(enum.Enum):
    ISSUED = "ISSUED"
    VOID = "VOID"  # its refund was refused by the processor: nothing was credited


_OUTCOMES: dict[InvoiceStatus, frozenset[CreditNoteOutcome]] = {
    InvoiceStatus.OPEN: frozenset({CreditNoteOutcome.REDUCE_AMOUNT_DUE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({CreditNoteOutcome.REDUCE_AMOUNT_DUE}),
    InvoiceStatus.PAID: frozenset({CreditNoteOutcome.REFUND, CreditNoteOutcome.CREDIT_BALANCE}),
    InvoiceStatus.PARTIALLY_REFUNDED: frozenset({CreditNoteOutcome.REFUND, CreditNoteOutcome.CREDIT_BALANCE}),
    InvoiceStatus.REFUNDED: frozenset({CreditNoteOutcome.CREDIT_BALANCE}),
}


@dataclass(frozen=True, slots=True)
class InvoiceCredit:
    """The figures of an invoice that bound its credit notes (minor units)."""

    status: InvoiceStatus
    total: int
    tax: int
    credit_applied: int
    amount_paid: int
    amount_credited: int
    credited_against_due: int
    tax_credited: int

    @property
    def amount_due(self) -> int:
        return self.total - self.credit_applied - self.amount_paid - self.credited_against_due

    def creditable(self, outcome: CreditNoteOutcome) -> int:
        """The most a new credit note with ``outcome`` may credit."""
        left = self.total - self.amount_credited
        if outcome is CreditNoteOutcome.REDUCE_AMOUNT_DUE:
            return max(min(left, self.amount_due), 0)
        return max(left, 0)


@dataclass(frozen=True, slots=True)
class CreditAmounts:
    total: int  # tax included
    tax: int

    @property
    def subtotal(self) -> int:
        return self.total - self.tax


def check_outcome(status: InvoiceStatus, outcome: CreditNoteOutcome) -> None:
    """INVALID_TRANSITION unless a credit note with ``outcome`` may correct an invoice in ``status``."""
    allowed = _OUTCOMES.get(status, frozenset())
    if not allowed:
        raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                           f"A {status.value} invoice cannot be credited.", field="invoiceId")
    if outcome not in allowed:
        names = ", ".join(sorted(item.value for item in allowed))
        raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                           f"A {status.value} invoice is credited with {names}, not {outcome.value}.",
                           field="outcome")


def credit_amounts(invoice: InvoiceCredit, amount: int, outcome: CreditNoteOutcome,
                   field: str = "amount") -> CreditAmounts:
    """The total and tax of a credit note of ``amount`` (tax included) on ``invoice``.

    More than zero and at most ``creditable`` (CREDIT_EXCEEDS_INVOICE otherwise, with what is
    left). The tax: see the module's docstring.
    """
    check_outcome(invoice.status, outcome)
    left = invoice.creditable(outcome)
    if amount <= 0 or amount > left:
        what = "still due" if outcome is CreditNoteOutcome.REDUCE_AMOUNT_DUE else "not yet credited"
        raise BillingError(BillingErrorCode.CREDIT_EXCEEDS_INVOICE,
                           f"A credit note is more than zero and at most what is {what} ({left} minor units).",
                           field=field, creditable=left)
    tax_left = invoice.tax - invoice.tax_credited
    net_left = (invoice.total - invoice.tax) - (invoice.amount_credited - invoice.tax_credited)
    proportional = round_half_up(Fraction(amount * invoice.tax, invoice.total)) if invoice.total else 0
    tax = min(max(proportional, amount - net_left, 0), tax_left, amount)
    return CreditAmounts(total=amount, tax=tax)


def line_creditable(line_amount: int, *, subtotal: int, total: int, already: int) -> int:
    """What is left to credit of an invoice line: its share of the invoice's total (discount and
    tax included), rounded once, less what earlier credit notes took from it."""
    if line_amount <= 0 or subtotal <= 0:
        return 0
    return max(round_half_up(Fraction(line_amount * total, subtotal)) - already, 0)


# ---- void and uncollectible --------------------------------------------------------------

def check_void(status: InvoiceStatus) -> None:
    """OPEN -> VOID only; a paid invoice is corrected with a credit note instead."""
    if status is InvoiceStatus.OPEN:
        return
    if status in (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED, InvoiceStatus.REFUNDED):
        message = f"A {status.value} invoice cannot be voided: issue a credit note."
    else:
        message = f"Only an OPEN invoice can be voided; this one is {status.value}."
    raise BillingError(BillingErrorCode.INVALID_TRANSITION, message, field="invoiceId")


def check_uncollectible(status: InvoiceStatus) -> None:
    """OPEN -> UNCOLLECTIBLE only (it may still be paid later: UNCOLLECTIBLE -> PAID)."""
    if status is not InvoiceStatus.OPEN:
        raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                           f"Only an OPEN invoice can be marked uncollectible; this one is {status.value}.",
                           field="invoiceId")


def coupon_months_given_back(remaining: int | None, months: int, *, once: bool,
                             duration_in_months: int | None) -> int | None:
    """The coupon months a subscription holds again once a voided period invoice gives back the
    ``months`` it spent (None: a FOREVER coupon, nothing to give back). ONCE: one use again;
    REPEATING: the months back, never more than the coupon's duration."""
    if once:
        return 1
    if duration_in_months is None:
        return remaining
    return min((remaining or 0) + months, duration_in_months)
