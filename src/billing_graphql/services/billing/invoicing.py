"""The invoicing core shared by subscriptions, checkout and the billing run.

These functions work inside the caller's transaction (they take its session and never commit):
the caller has locked the organization first (``db.engine.lock_organization``).

- ``tax_rule_for``: the tax rate in force for a currency (PPN for IDR).
- ``draft_invoice``: pure pricing of lines with coupon, tax and the organization's account credit.
- ``create_invoice``: a DRAFT invoice row with its lines, spending the account credit it uses.
- ``finalize_invoice``: DRAFT -> OPEN with a gapless number ``INV-YYYYMM-000001``.

Charging them is ``billing.charging``; account credit is ``billing.credit``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    Organization,
    TaxRate,
)
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.domain.invoices import Discount, InvoiceDraft, LineDraft, build_invoice
from billing_graphql.domain.invoices import amount_due as amount_due  # the services' name for it
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.domain.tax import TaxRule
from billing_graphql.services.billing.credit import available_credit, move_account_credit
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.platform.billing_details import copy_billing_details
from billing_graphql.services.webhooks.objects import event_data


def rate_in_force(currency: Any, at: Any) -> Select:
    """The rate in force at ``at`` for ``currency`` (values or SQL expressions): the latest ``effective_from`` not
    after it (``rule_in_force`` of its row)."""
    return _rates_newest_first([currency]).where(TaxRate.effective_from <= at).limit(1)


async def tax_rule_for(session: AsyncSession, currency: str, at: datetime) -> TaxRule | None:
    """The rate in force at ``at`` for ``currency`` (the latest ``effective_from`` not after it)."""
    return rule_in_force(await session.scalars(rate_in_force(currency, at)), at)


def _rates_newest_first(currencies: list[str]):
    return (select(TaxRate).where(TaxRate.currency.in_(currencies))
            .order_by(TaxRate.effective_from.desc(), TaxRate.created_at.desc()))


async def tax_rates_of(session: AsyncSession, currencies: list[str]) -> dict[str, list[TaxRate]]:
    """Every rate of ``currencies``, newest first (for ``rule_in_force`` at many instants: one statement)."""
    found: dict[str, list[TaxRate]] = {currency: [] for currency in currencies}
    for row in await session.scalars(_rates_newest_first(currencies)):
        found[row.currency].append(row)
    return found


def rule_in_force(rates_newest_first, at: datetime) -> TaxRule | None:
    """The first of the rates (newest first) in force at ``at``, as a ``TaxRule``."""
    row = next((rate for rate in rates_newest_first if rate.effective_from <= at), None)
    if row is None:
        return None
    return TaxRule(row.name, row.rate, row.base_numerator, row.base_denominator)


def draft_invoice(
    organization: Organization,
    currency: str,
    lines: list[LineDraft],
    *,
    discount: Discount | None,
    tax_rule: TaxRule | None,
) -> InvoiceDraft:
    """Price ``lines`` for ``organization`` without writing anything (also the dry-run preview)."""
    return build_invoice(
        currency, lines, discount=discount, tax_rule=tax_rule,
        account_credit=available_credit(organization, currency),
    )


async def create_invoice(
    session: AsyncSession,
    organization: Organization,
    draft: InvoiceDraft,
    *,
    subscription_id: uuid.UUID | None,
    billing_reason: BillingReason,
    period_start: datetime | None,
    period_end: datetime | None,
    now: datetime,
) -> Invoice:
    """A DRAFT invoice from ``draft``; the account credit it applies leaves the balance now."""
    invoice = new_invoice(session, organization, draft, subscription_id=subscription_id,
                          billing_reason=billing_reason, period_start=period_start, period_end=period_end, now=now)
    await session.flush()
    if draft.credit_applied:
        apply_credit(organization, invoice, now)
        await session.flush()
    return invoice


def new_invoice(session: AsyncSession, organization: Organization, draft: InvoiceDraft, **placement: Any) -> Invoice:
    """``create_invoice``'s row and lines (``placement``: ``invoice_values``'s keywords), added to
    the session (nothing flushed); the caller then spends the credit with ``apply_credit`` once the
    invoice is flushed."""
    invoice = Invoice(**invoice_values(organization, draft, **placement))
    invoice.lines = [
        InvoiceLine.from_fields(line, id=uuid.uuid4(), position=position) for position, line in enumerate(draft.lines)
    ]
    session.add(invoice)
    return invoice


def invoice_values(
    organization: Organization,
    draft: InvoiceDraft,
    *,
    subscription_id: uuid.UUID | None,
    billing_reason: BillingReason,
    period_start: datetime | None,
    period_end: datetime | None,
    now: datetime,
) -> dict[str, object]:
    """The columns of ``new_invoice``'s DRAFT row (a new id), the organization touched at ``now``
    (the billing run's batch writes its invoices' rows with one INSERT from these)."""
    if draft.credit_applied > available_credit(organization, draft.currency):
        raise ValueError("the draft spends more account credit than the organization holds")
    rule = draft.tax_rule
    organization.updated_at = now
    return dict(
        id=uuid.uuid4(),
        organization_id=organization.id,
        subscription_id=subscription_id,
        status=InvoiceStatus.DRAFT,
        billing_reason=billing_reason,
        currency=draft.currency,
        period_start=period_start,
        period_end=period_end,
        subtotal=draft.subtotal,
        discount=draft.discount,
        tax=draft.tax,
        tax_name=rule.name if rule else None,
        tax_rate=rule.rate if rule else None,
        tax_base_numerator=rule.base_numerator if rule else 1,
        tax_base_denominator=rule.base_denominator if rule else 1,
        total=draft.total,
        credit_applied=draft.credit_applied,
        amount_paid=0,
        amount_refunded=0,
        amount_credited=0,
        credited_against_due=0,
        tax_credited=0,
        retry_count=0,
        created_at=now,
        updated_at=now,
    )


def apply_credit(organization: Organization, invoice: Invoice, now: datetime) -> None:
    """The account credit ``invoice`` applies leaves the balance (its ledger entry points at it)."""
    if invoice.credit_applied:
        move_account_credit(organization, -invoice.credit_applied, invoice.currency,
                            source=CreditSource.INVOICE_APPLIED, reason="applied to an invoice",
                            invoice_id=invoice.id, now=now)


async def next_in_series(session: AsyncSession, model: type, month: str) -> int:
    """The next value of a gapless monthly number series (``model``: a table of ``month`` and
    ``last_value``, e.g. ``InvoiceNumberSequence``), in the caller's transaction: see
    ``assign_invoice_number``."""
    return (await next_block(session, model, month, 1))[0]


async def next_block(session: AsyncSession, model: type, month: str, count: int) -> range:
    """The next ``count`` values of a gapless monthly series, in one statement (the billing run's
    batch numbers its invoices with one): the month's row moves by ``count`` and stays locked
    (PostgreSQL) until the caller's transaction ends, as for one value."""
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    statement = (
        insert(table)
        .values(month=month, last_value=count)
        .on_conflict_do_update(index_elements=[table.c.month], set_={"last_value": table.c.last_value + count})
        .returning(table.c.last_value)
    )
    last = (await session.execute(statement)).scalar_one()
    return range(last - count + 1, last + 1)


def invoice_number(month: str, value: int) -> str:
    return f"INV-{month}-{value:06d}"


async def assign_invoice_number(session: AsyncSession, invoice: Invoice, now: datetime) -> str:
    """Give ``invoice`` the next number of ``now``'s month: gapless and unique.

    One statement upserts and increments the month's row and returns the new value:
    ``INSERT ... ON CONFLICT (month) DO UPDATE SET last_value = last_value + 1 RETURNING``.
    On PostgreSQL the updated row stays locked until the caller's transaction ends, so
    concurrent finalizations queue on it; on SQLite the write transaction (BEGIN IMMEDIATE)
    already serializes them. A rolled-back transaction rolls its increment back with it, so no
    number is ever skipped; the unique constraint on ``invoices.number`` is the backstop.
    """
    if invoice.number is not None:
        return invoice.number
    month = now.strftime("%Y%m")
    value = await next_in_series(session, InvoiceNumberSequence, month)
    invoice.number = invoice_number(month, value)
    return invoice.number


async def finalize_invoice(
    session: AsyncSession, invoice: Invoice, now: datetime, *, days_until_due: int = 0
) -> Invoice:
    """DRAFT -> OPEN: number, ``finalized_at``, due date (charged automatically: due now) and a
    copy of the buyer's billing details as they are now.

    Writes the outbox event ``invoice.created`` (drafts are internal; an invoice is announced
    once it is final).
    """
    if invoice.status is not InvoiceStatus.DRAFT:
        raise ValueError(f"only a DRAFT invoice is finalized, not a {invoice.status.value} one")
    await assign_invoice_number(session, invoice, now)
    await copy_billing_details(session, invoice)
    mark_open(invoice, now, days_until_due=days_until_due)
    await session.flush()
    announce_created(session, invoice, now)
    return invoice


def mark_open(invoice: Invoice, now: datetime, *, days_until_due: int = 0) -> None:
    """``finalize_invoice``'s change of the row: DRAFT -> OPEN, numbered already."""
    if invoice.status is not InvoiceStatus.DRAFT or invoice.number is None:
        raise ValueError("only a numbered DRAFT invoice is finalized")
    invoice.status = InvoiceStatus.OPEN
    invoice.finalized_at = now
    invoice.due_date = now + timedelta(days=days_until_due)
    invoice.updated_at = now


def announce_created(session: AsyncSession, invoice: Invoice, now: datetime) -> None:
    """The outbox event ``invoice.created`` of a finalized (flushed) invoice."""
    emit_event(session, event_type="invoice.created", organization_id=invoice.organization_id,
               payload=invoice_event_payload(invoice), now=now)


def invoice_event_payload(invoice: Invoice, **extra: object) -> dict[str, object]:
    """An invoice event's data: the invoice as the API shows it, and ``extra`` (``payment_id``, a
    decline's ``failure_code`` and ``failure_message``, a void's ``reason``)."""
    return event_data("Invoice", invoice, ids={"payment_id": "Payment"}, **extra)


# ---- reads ----------------------------------------------------------------------------------

def invoices_statement(organization_id: uuid.UUID | None, status: InvoiceStatus | None):
    """Invoices newest first (``organization_id`` None: every organization's, for super-admins)."""
    statement = select(Invoice).order_by(Invoice.created_at.desc(), Invoice.number.desc(), Invoice.id.desc())
    if organization_id is not None:
        statement = statement.where(Invoice.organization_id == organization_id)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    return statement


async def get_invoice(db, invoice_id: uuid.UUID, *, organization_id: uuid.UUID | None) -> Invoice | None:
    """One invoice; with ``organization_id`` only when it belongs to that organization."""
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if organization_id is not None:
        statement = statement.where(Invoice.organization_id == organization_id)
    async with db.read() as session:
        return await session.scalar(statement)
