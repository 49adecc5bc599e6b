"""The account balance: staff adjustments (``adjustCreditBalance``) and the ledger's pages.

Every change of the balance is an entry of ``credit_balance_transactions`` written by
``billing.credit.move_account_credit`` in the unit of work that changes it; this module adds the
staff's own entries (source ADJUSTMENT) and reads the ledger, newest first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from typing import Any

from sqlalchemy import Select, select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import CreditBalanceTransaction, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import bounded_text
from billing_graphql.domain.credit_balance import MAX_REASON_LENGTH, CreditBalanceError, CreditSource
from billing_graphql.domain.errors import validation
from billing_graphql.domain.money import Money, major_to_minor_exact, normalize_currency
from billing_graphql.services.billing.credit import move_account_credit
from billing_graphql.services.pagination import Page, read_page
from billing_graphql.services.unit_of_work import money_move

OPERATION = "adjust_credit_balance"


@dataclass(slots=True)
class Adjustment:
    organization: Organization
    transaction: CreditBalanceTransaction


def clean_reason(reason: str | None, field: str = "reason") -> str:
    return bounded_text(reason, "A reason", field, MAX_REASON_LENGTH, required=True)


async def adjust_credit_balance(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, amount: Decimal, currency: str,
    reason: str | None, idempotency_key: str | None, now: datetime,
) -> Adjustment:
    """Credit (``amount`` > 0) or debit (< 0) the organization's balance, in major units of
    ``currency``: the balance's currency while it holds credit, else the organization's. A debit
    never takes the balance below zero; zero is refused. Audited (``credit_balance.adjusted``)."""
    currency = normalize_currency(currency)
    minor = major_to_minor_exact(amount, currency, "amount")
    if minor == 0:
        raise validation("An adjustment moves the balance: its amount is not zero.", "amount")
    reason = clean_reason(reason)
    request = {"amount": minor, "currency": currency, "reason": reason}
    async with money_move(db, organization_id, OPERATION, idempotency_key, request, actor=actor, now=now) as uow:
        session, organization = uow.session, uow.organization
        if uow.replayed:
            row = await session.get(CreditBalanceTransaction, uuid.UUID(uow.stored["transaction_id"]))
            return Adjustment(organization, row)
        held = organization.credit_currency if organization.credit_balance else organization.currency
        if currency != held:
            raise validation(f"The balance is held in {held}; adjust it in {held}.", "currency")
        before = {"credit_balance": organization.credit_balance, "credit_currency": organization.credit_currency}
        try:
            row = move_account_credit(organization, minor, currency, source=CreditSource.ADJUSTMENT, reason=reason,
                                      now=now)
        except CreditBalanceError:
            balance = Money(organization.credit_balance, currency).format()
            raise validation(f"The balance is {balance}: a debit of {Money(-minor, currency).format()} would take "
                             "it below zero.", "amount") from None
        await session.flush()
        uow.audit("credit_balance.adjusted", "Organization", organization.id, before=before,
                  after={"credit_balance": organization.credit_balance, "credit_currency": currency,
                         "transaction_id": str(row.id), "amount": minor}, reason=reason)
        uow.done({"transaction_id": row.id})
    return Adjustment(organization, row)


async def list_credit_balance_transactions(db: Database, organization_id: uuid.UUID, *, first: int,
                                           offset: int) -> Page[CreditBalanceTransaction]:
    """The organization's ledger, newest entry first."""
    return await read_page(db, credit_balance_transactions_statement(organization_id), first=first, offset=offset)


def credit_balance_transactions_statement(organization_id: uuid.UUID) -> Select[Any]:
    """The organization's ledger, newest entry first (read by ``list_credit_balance_transactions`` and the
    compiled SQL tier)."""
    return (select(CreditBalanceTransaction).where(CreditBalanceTransaction.organization_id == organization_id)
            .order_by(CreditBalanceTransaction.sequence.desc()))
