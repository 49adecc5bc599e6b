"""Account credit: a balance held in one currency, spent by later invoices after their tax
(``invoicing.create_invoice`` takes it off the balance).

The balance is a ledger (``CreditBalanceTransaction``): every change of
``organizations.credit_balance`` goes through ``move_account_credit`` here, which writes its entry
in the same session (the caller's unit of work, holding the organization's lock), so the balance
is the sum of the entries by construction; the database checks the chain (see the model).

Sources: DOWNGRADE (a plan change or add-on removal handed back credit), CREDIT_NOTE (a credit
note with outcome CREDIT_BALANCE), ADJUSTMENT (``adjustCreditBalance``, staff), INVOICE_APPLIED
(negative: spent on an invoice; positive: given back when that invoice is voided).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import object_session

from billing_graphql.db.models import CreditBalanceTransaction, Organization
from billing_graphql.domain.credit_balance import CreditSource, next_entry


def available_credit(organization: Organization, currency: str) -> int:
    """Account credit usable on an invoice in ``currency`` (credit is held in one currency)."""
    if organization.credit_balance and organization.credit_currency == currency:
        return organization.credit_balance
    return 0


def add_account_credit(
    organization: Organization, amount: int, currency: str, *,
    source: CreditSource | str = CreditSource.DOWNGRADE, reason: str = "",
    invoice_id: uuid.UUID | None = None, now: datetime | None = None,
) -> CreditBalanceTransaction | None:
    """Add ``amount`` (never negative; zero writes nothing) to the organization's balance, in its
    currency, with its ledger entry (``source``: a ``CreditSource`` or its name, e.g. "CREDIT_NOTE").
    ``now`` defaults to the unit of work's instant (``session.info["now"]``)."""
    if amount < 0:
        raise ValueError("credit added is never negative")
    if amount == 0:
        return None
    return move_account_credit(organization, amount, currency, source=source, reason=reason, invoice_id=invoice_id,
                               now=now)


def move_account_credit(
    organization: Organization, amount: int, currency: str, *, source: CreditSource | str, reason: str = "",
    invoice_id: uuid.UUID | None = None, now: datetime | None = None,
) -> CreditBalanceTransaction:
    """Move the balance by ``amount`` (positive credit, negative debit; never below zero: a
    ``CreditBalanceError``) and write its entry in the organization's session."""
    session = object_session(organization)
    if session is None:
        raise ValueError("the organization is not in a session: its ledger entry could not be written")
    if now is None:
        now = session.info.get("now")
        if now is None:
            raise ValueError("no instant for the ledger entry: pass now=")
    entry = next_entry(organization.credit_balance, organization.credit_currency, amount, currency)
    sequence = organization.credit_sequence + 1
    row = CreditBalanceTransaction(
        id=uuid.uuid4(),
        organization_id=organization.id,
        sequence=sequence,
        previous_sequence=sequence - 1 if sequence > 1 else None,
        amount=entry.amount,
        balance_before=entry.balance_before,
        balance_after=entry.balance_after,
        currency=currency,
        source=CreditSource(source),
        reason=reason,
        invoice_id=invoice_id,
        created_at=now,
    )
    session.add(row)
    organization.credit_sequence = sequence
    organization.credit_balance = entry.balance_after
    organization.credit_currency = currency
    organization.updated_at = now
    return row
