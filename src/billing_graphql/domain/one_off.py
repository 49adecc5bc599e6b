"""One-off charges: an invoice item pending for the next invoice, or the items of a one-off invoice.

An item is a description, a unit amount (minor units, tax excluded, more than zero) and a
quantity (1 to 10,000); its line bills ``unit amount x quantity`` as kind ONE_OFF, taxed and
discounted like any line of the invoice it lands on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from billing_graphql.domain.catalog import bounded_text
from billing_graphql.domain.errors import validation
from billing_graphql.domain.invoices import InvoiceLineKind, LineDraft

MAX_DESCRIPTION = 500
MAX_QUANTITY = 10_000
MAX_ITEMS = 50
MAX_LINE_AMOUNT = 10**15  # minor units: far above any real charge, far below BIGINT
DEFAULT_DAYS_UNTIL_DUE = 30
MAX_DAYS_UNTIL_DUE = 365


class CollectMethod(enum.Enum):
    """How a one-off invoice is collected."""

    CHARGE_NOW = "CHARGE_NOW"  # charged to the default payment method at once
    SEND = "SEND"  # left OPEN with a due date, for the customer to pay


class InvoiceItemStatus(enum.Enum):
    PENDING = "PENDING"  # waits for the next invoice
    INVOICED = "INVOICED"  # billed on an invoice


@dataclass(frozen=True, slots=True)
class OneOffItem:
    description: str
    unit_amount: int
    quantity: int

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity

    def line(self) -> LineDraft:
        return LineDraft(kind=InvoiceLineKind.ONE_OFF, description=self.description, quantity=Decimal(self.quantity),
                         unit_amount=Decimal(self.unit_amount), amount=self.amount)


def one_off_item(description: str | None, unit_amount: int, quantity: int, *, field_prefix: str = "") -> OneOffItem:
    """A checked item (VALIDATION on ``<prefix>description``, ``amount`` or ``quantity``)."""
    description = bounded_text(description, "A description", f"{field_prefix}description", MAX_DESCRIPTION,
                               required=True)
    if unit_amount <= 0:
        raise validation("The amount is more than zero (a credit goes to the account balance).",
                         f"{field_prefix}amount")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise validation(f"The quantity is 1 to {MAX_QUANTITY:,}.", f"{field_prefix}quantity")
    if unit_amount * quantity > MAX_LINE_AMOUNT:
        raise validation("The amount times the quantity is too large.", f"{field_prefix}amount")
    return OneOffItem(description, unit_amount, quantity)


def days_until_due(collect: CollectMethod, days: int | None) -> int:
    """The days a one-off invoice is due in: 0 when charged now; ``days`` (default 30, 1 to 365) when sent."""
    if collect is CollectMethod.CHARGE_NOW:
        if days not in (None, 0):
            raise validation("daysUntilDue is for invoices sent (collect: SEND); a charge is due now.",
                             "daysUntilDue")
        return 0
    days = DEFAULT_DAYS_UNTIL_DUE if days is None else days
    if not 1 <= days <= MAX_DAYS_UNTIL_DUE:
        raise validation(f"daysUntilDue is 1 to {MAX_DAYS_UNTIL_DUE}.", "daysUntilDue")
    return days
