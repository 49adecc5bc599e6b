"""The account balance as a ledger: every change of an organization's credit is one entry.

An entry carries a signed ``amount`` (positive: credit added; negative: credit spent or taken
back) and the balance before and after it; the balance shown is the last entry's
``balance_after``, which is the sum of the entries' amounts (``db.models.CreditBalanceTransaction``
makes the database check the chain). The balance is never below zero.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CreditSource(enum.Enum):
    """Why the balance moved."""

    DOWNGRADE = "DOWNGRADE"  # a plan change or add-on removal handed back the unused part
    CREDIT_NOTE = "CREDIT_NOTE"  # a credit note with outcome CREDIT_BALANCE
    ADJUSTMENT = "ADJUSTMENT"  # staff (adjustCreditBalance), and an opening balance
    INVOICE_APPLIED = "INVOICE_APPLIED"  # spent on an invoice (negative), or given back when it is voided


MAX_REASON_LENGTH = 500


class CreditBalanceError(ValueError):
    """An entry the ledger refuses (zero, below zero, another currency)."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    amount: int
    balance_before: int
    balance_after: int
    currency: str


def next_entry(balance: int, held_currency: str | None, amount: int, currency: str) -> LedgerEntry:
    """The entry moving ``balance`` (held in ``held_currency``) by ``amount`` in ``currency``.

    Credit is held in one currency: while the balance is not zero, an entry in another currency is
    refused; at zero, the next credit may start another currency. The balance never goes below zero.
    """
    if amount == 0:
        raise CreditBalanceError("a ledger entry moves the balance: its amount is not zero")
    if balance and held_currency not in (None, currency):
        raise CreditBalanceError(f"the organization holds credit in {held_currency}, not {currency}")
    after = balance + amount
    if after < 0:
        raise CreditBalanceError(f"the balance is {balance}: taking {-amount} would leave it below zero")
    return LedgerEntry(amount=amount, balance_before=balance, balance_after=after, currency=currency)
