"""Account credit: what a downgrade hands back, held in one currency and spent by later invoices
after their tax (``invoicing.create_invoice`` takes it off the balance)."""

from __future__ import annotations

from billing_graphql.db.models import Organization


def available_credit(organization: Organization, currency: str) -> int:
    """Account credit usable on an invoice in ``currency`` (credit is held in one currency)."""
    if organization.credit_balance and organization.credit_currency == currency:
        return organization.credit_balance
    return 0


def add_account_credit(organization: Organization, amount: int, currency: str) -> None:
    """Add credit (from a downgrade) to the organization's balance, in its currency."""
    if amount < 0:
        raise ValueError("credit added is never negative")
    if amount == 0:
        return
    if organization.credit_balance and organization.credit_currency not in (None, currency):
        raise ValueError(
            f"the organization holds credit in {organization.credit_currency}, not {currency}"
        )
    organization.credit_balance += amount
    organization.credit_currency = currency
