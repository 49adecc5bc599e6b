"""Invoice lines and totals.

    subtotal      = sum of the lines (each rounded once already)
    discount      = the coupon's: PERCENTAGE of the subtotal (rounded once, half up) or FIXED in
                    the invoice's currency; never more than the subtotal
    tax           = tax on (subtotal - discount), rounded once (domain.tax)
    total         = subtotal - discount + tax
    credit_applied= min(account credit, total)   (credit is spent after tax, as Lago applies
                                                  credit notes)
    amount_due    = total - credit_applied

A negative subtotal (a downgrade's proration) is priced the same way on its magnitude and keeps
its sign: discount and tax are then negative too, and -total is what the customer gets back as
account credit (``Totals.is_credit``). Such a result is never stored as an invoice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

from billing_graphql.domain.proration import Proration, Recurring, RecurringKind, round_half_up
from billing_graphql.domain.tax import TaxRule, tax_on


class InvoiceLineKind(enum.Enum):
    """What an invoice line bills (stored as such on ``invoice_lines.kind``)."""

    PLAN = "PLAN"
    SEATS = "SEATS"
    ADDON = "ADDON"
    OVERAGE = "OVERAGE"  # usage above a limit, before charges (invoices written before migration 0016)
    USAGE = "USAGE"  # one usage charge of a plan for a period (domain.charges)
    PRORATION_CREDIT = "PRORATION_CREDIT"
    PRORATION_CHARGE = "PRORATION_CHARGE"
    DISCOUNT = "DISCOUNT"
    ONE_OFF = "ONE_OFF"  # a one-off charge (an invoice item, or a line of a one-off invoice)


class DiscountKind(enum.Enum):
    """A coupon's discount: a share off (PERCENTAGE) or an amount off (FIXED)."""

    PERCENTAGE = "PERCENTAGE"
    FIXED = "FIXED"


UNIT_AMOUNT_PLACES = Decimal("1e-6")


class InvoiceFigures(Protocol):
    """What an invoice's amount due is made of (an Invoice row, or a row of a query over it)."""

    total: int
    credit_applied: int
    amount_paid: int
    credited_against_due: int | None


def amount_due(invoice: InvoiceFigures) -> int:
    """What an invoice still asks for: total - account credit applied - paid - what credit notes
    took off it (REDUCE_AMOUNT_DUE). Refunds do not change it (they give back what was paid)."""
    return invoice.total - invoice.credit_applied - invoice.amount_paid - (invoice.credited_against_due or 0)


def exact_decimal(value: Fraction) -> Decimal:
    """A rational amount of minor units as a Decimal for display (6 places of a minor unit)."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(UNIT_AMOUNT_PLACES).normalize()


@dataclass(frozen=True, slots=True)
class LineDraft:
    kind: InvoiceLineKind
    description: str
    quantity: Decimal
    unit_amount: Decimal  # minor units, possibly with fractions of one (prorated units)
    amount: int  # minor units, rounded once; negative for credits
    period_start: datetime | None = None
    period_end: datetime | None = None
    # USAGE lines: the tiers that priced the quantity (domain.charges.TierUse as stored, exact
    # minor units as strings); None for other lines.
    tier_breakdown: list[dict] | None = None
    # What the line bills, as structure a document renders in its own language (``line_detail``'s
    # keys); None for free text (a one-off charge's description).
    detail: dict | None = None


_RECURRING_LINE_KINDS = {
    RecurringKind.PLAN: InvoiceLineKind.PLAN,
    RecurringKind.SEATS: InvoiceLineKind.SEATS,
    RecurringKind.ADDON: InvoiceLineKind.ADDON,
}


def period_lines(recurring: Recurring, start: datetime, end: datetime) -> list[LineDraft]:
    """One line per recurring item (plan, seats, add-ons) for a whole period."""
    return [
        LineDraft(
            kind=_RECURRING_LINE_KINDS[item.kind],
            description=item.description,
            quantity=Decimal(item.quantity),
            unit_amount=Decimal(item.unit_amount),
            amount=item.amount,
            period_start=start,
            period_end=end,
            detail=item.detail,
        )
        for item in recurring.items()
    ]


def proration_lines(
    proration: Proration,
    *,
    old_description: str,
    new_description: str,
    at: datetime,
    period_end: datetime,
    new_period_end: datetime,
    old_detail: dict | None = None,
    new_detail: dict | None = None,
) -> list[LineDraft]:
    """A credit line for the unused old price and a charge line for the new (zero ones left out).

    The unit amount carries the exact prorated value; the amount is it rounded once. ``old_detail``
    and ``new_detail``: what the descriptions name, as structure (a ``detail`` of a recurring item).
    """
    lines: list[LineDraft] = []
    if proration.credit:
        lines.append(
            LineDraft(
                kind=InvoiceLineKind.PRORATION_CREDIT,
                description=f"Unused time on {old_description}",
                quantity=Decimal(1),
                unit_amount=-exact_decimal(proration.exact_credit),
                amount=-proration.credit,
                period_start=at,
                period_end=period_end,
                detail={"proration": "unused", "of": old_detail} if old_detail else None,
            )
        )
    if proration.charge:
        lines.append(
            LineDraft(
                kind=InvoiceLineKind.PRORATION_CHARGE,
                description=f"Remaining time on {new_description}"
                if not proration.restarts_period
                else f"{new_description}, new period",
                quantity=Decimal(1),
                unit_amount=exact_decimal(proration.exact_charge),
                amount=proration.charge,
                period_start=at,
                period_end=new_period_end,
                detail={"proration": "new_period" if proration.restarts_period else "remaining", "of": new_detail}
                if new_detail else None,
            )
        )
    return lines


@dataclass(frozen=True, slots=True)
class Discount:
    kind: DiscountKind
    percent_off: int | None = None
    amount_off: int | None = None  # minor units of ``currency``
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.kind is DiscountKind.PERCENTAGE:
            if self.percent_off is None or not 1 <= self.percent_off <= 100:
                raise ValueError("a percentage discount is 1..100 percent")
        elif self.amount_off is None or self.amount_off <= 0 or not self.currency:
            raise ValueError("a fixed discount has a positive amount and a currency")

    def applies_to(self, currency: str) -> bool:
        return self.kind is DiscountKind.PERCENTAGE or self.currency == currency

    def amount_for(self, subtotal: int, currency: str) -> int:
        """The discount on a non-negative ``subtotal``: never negative, never above it."""
        if subtotal < 0:
            raise ValueError("discounts apply to a non-negative subtotal")
        if not self.applies_to(currency):
            return 0
        if self.kind is DiscountKind.PERCENTAGE:
            assert self.percent_off is not None
            return min(round_half_up(Fraction(subtotal * self.percent_off, 100)), subtotal)
        assert self.amount_off is not None
        return min(self.amount_off, subtotal)


@dataclass(frozen=True, slots=True)
class Totals:
    currency: str
    subtotal: int
    discount: int
    tax: int
    total: int
    tax_rule: TaxRule | None

    @property
    def is_credit(self) -> bool:
        return self.total < 0


def price(currency: str, lines: list[LineDraft] | tuple[LineDraft, ...], *, discount: Discount | None,
          tax_rule: TaxRule | None) -> Totals:
    """Subtotal, discount, tax and total of ``lines`` (signed; see the module docstring)."""
    subtotal = sum(line.amount for line in lines)
    sign = -1 if subtotal < 0 else 1
    magnitude = abs(subtotal)
    discounted = discount.amount_for(magnitude, currency) if discount else 0
    tax = tax_on(magnitude - discounted, tax_rule)
    return Totals(
        currency=currency,
        subtotal=subtotal,
        discount=sign * discounted,
        tax=sign * tax,
        total=sign * (magnitude - discounted + tax),
        tax_rule=tax_rule,
    )


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    currency: str
    lines: tuple[LineDraft, ...]
    subtotal: int
    discount: int
    tax: int
    tax_rule: TaxRule | None
    total: int
    credit_applied: int
    amount_due: int


def build_invoice(
    currency: str,
    lines: list[LineDraft] | tuple[LineDraft, ...],
    *,
    discount: Discount | None,
    tax_rule: TaxRule | None,
    account_credit: int,
) -> InvoiceDraft:
    """An invoice of ``lines``: totals, then account credit spent on the total (after tax)."""
    return invoice_from_totals(lines, price(currency, lines, discount=discount, tax_rule=tax_rule),
                               account_credit=account_credit)


def invoice_from_totals(lines: list[LineDraft] | tuple[LineDraft, ...], totals: Totals, *,
                        account_credit: int) -> InvoiceDraft:
    """The invoice of ``lines`` already priced as ``totals``: account credit spent on the total."""
    if account_credit < 0:
        raise ValueError("account credit is never negative")
    if totals.is_credit or totals.subtotal < 0:
        raise ValueError("a negative subtotal is account credit, not an invoice")
    credit_applied = min(account_credit, totals.total)
    return InvoiceDraft(
        currency=totals.currency,
        lines=tuple(lines),
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax=totals.tax,
        tax_rule=totals.tax_rule,
        total=totals.total,
        credit_applied=credit_applied,
        amount_due=totals.total - credit_applied,
    )
