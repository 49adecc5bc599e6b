"""The invoicing core shared by subscriptions, checkout and the billing run.

These functions work inside the caller's transaction (they take its session and never commit):
the caller has locked the organization first (``db.engine.lock_organization``).

- ``tax_rule_for``: the tax rate in force for a currency (PPN for IDR).
- ``draft_invoice``: pure pricing of lines with coupon, tax and the organization's account credit.
- ``create_invoice``: a DRAFT invoice row with its lines, spending the account credit it uses.
- ``finalize_invoice``: DRAFT -> OPEN with a gapless number ``INV-YYYYMM-000001``.
- ``charge_invoice``: a PENDING payment row, the gateway call, then SUCCEEDED/PAID or FAILED.
- ``reconcile_payment``: settles a payment left PENDING by a processor fault, with the same key.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceNumberSequence,
    Organization,
    Payment,
    PaymentMethod,
    PaymentStatus,
    TaxRate,
)
from billing_graphql.domain.invoices import Discount, InvoiceDraft, LineDraft, build_invoice
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.domain.tax import TaxRule
from billing_graphql.gateways.base import ChargeOutcome, GatewayError, PaymentGateway
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.platform.billing_details import copy_billing_details

PROCESSING_ERROR = "processing_error"


async def tax_rule_for(session: AsyncSession, currency: str, at: datetime) -> TaxRule | None:
    """The rate in force at ``at`` for ``currency`` (the latest ``effective_from`` not after it)."""
    row = await session.scalar(
        select(TaxRate)
        .where(TaxRate.currency == currency, TaxRate.effective_from <= at)
        .order_by(TaxRate.effective_from.desc(), TaxRate.created_at.desc())
        .limit(1)
    )
    if row is None:
        return None
    return TaxRule(row.name, row.rate, row.base_numerator, row.base_denominator)


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
    if draft.credit_applied > available_credit(organization, draft.currency):
        raise ValueError("the draft spends more account credit than the organization holds")
    rule = draft.tax_rule
    invoice = Invoice(
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
        retry_count=0,
        created_at=now,
        updated_at=now,
    )
    invoice.lines = [
        InvoiceLine(
            id=uuid.uuid4(),
            position=position,
            kind=InvoiceLineKind(line.kind.value),
            description=line.description,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            amount=line.amount,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for position, line in enumerate(draft.lines)
    ]
    organization.credit_balance -= draft.credit_applied
    organization.updated_at = now
    session.add(invoice)
    await session.flush()
    return invoice


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
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = InvoiceNumberSequence.__table__
    statement = (
        insert(table)
        .values(month=month, last_value=1)
        .on_conflict_do_update(index_elements=[table.c.month], set_={"last_value": table.c.last_value + 1})
        .returning(table.c.last_value)
    )
    value = (await session.execute(statement)).scalar_one()
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
    invoice.status = InvoiceStatus.OPEN
    invoice.finalized_at = now
    invoice.due_date = now + timedelta(days=days_until_due)
    invoice.updated_at = now
    await session.flush()
    emit_event(session, event_type="invoice.created", organization_id=invoice.organization_id,
               payload=invoice_event_payload(invoice), now=now)
    return invoice


def amount_due(invoice: Invoice) -> int:
    return invoice.total - invoice.credit_applied - invoice.amount_paid


def invoice_event_payload(invoice: Invoice, **extra: object) -> dict[str, object]:
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "subscription_id": invoice.subscription_id,
        "status": invoice.status,
        "billing_reason": invoice.billing_reason,
        "currency": invoice.currency,
        "total": invoice.total,
        "credit_applied": invoice.credit_applied,
        "amount_paid": invoice.amount_paid,
        "amount_due": amount_due(invoice),
        **extra,
    }


async def default_payment_method(session: AsyncSession, organization_id: uuid.UUID) -> PaymentMethod | None:
    return await session.scalar(
        select(PaymentMethod).where(
            PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True)
        )
    )


def mark_paid(session: AsyncSession, invoice: Invoice, amount: int, now: datetime) -> None:
    """Record ``amount`` paid; the invoice is PAID once nothing is due."""
    invoice.amount_paid += amount
    invoice.updated_at = now
    if amount_due(invoice) == 0:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        emit_event(session, event_type="invoice.paid", organization_id=invoice.organization_id,
                   payload=invoice_event_payload(invoice), now=now)


def payment_key(payment_id: uuid.UUID) -> str:
    """The gateway idempotency key of a payment: derived from its id."""
    return f"pay_{payment_id.hex}"


async def charge_invoice(
    session: AsyncSession,
    invoice: Invoice,
    payment_method: PaymentMethod | None,
    gateway: PaymentGateway | None,
    now: datetime,
    *,
    payment_id: uuid.UUID | None = None,
) -> Payment | None:
    """Collect what an OPEN invoice still owes through ``gateway``.

    Nothing due (credit or a coupon covered it): the invoice is marked PAID, no payment row, None
    is returned. Otherwise:

    1. a Payment row is written PENDING and flushed, its gateway idempotency key ``pay_<id>``
       derived from its id;
    2. the gateway is called with that key;
    3. success: the payment is SUCCEEDED, the invoice PAID (``amount_paid``, ``paid_at``,
       outbox ``invoice.paid``); a decline: the payment is FAILED with the processor's code and
       message, the invoice stays OPEN (outbox ``invoice.payment_failed``). A decline is a
       result, returned, never raised.

    Crashes and faults, honestly:

    - The PENDING row is flushed, not committed: it is committed together with the outcome and
      the change that caused the charge, in the caller's one transaction. If the process dies
      between the gateway call and the commit, all of it rolls back, including the row. What
      keeps the charge from being repeated then is the key: callers with a client idempotency
      key pass ``payment_id`` derived from it (``services.idempotency.derived_id``), so the
      client's retry writes the same payment id and sends the same ``pay_<id>`` key, and the
      processor answers with the first attempt's outcome instead of charging twice (the
      sandbox's ids follow the key the same way). A call without a client key gets a random id;
      a crash in that window can leave a processor-side charge no row points at: it carries
      ``pay_<id>`` and the invoice id in its description for an operator to find and refund.
      That case is not reconciled automatically.
    - A processor fault (``GatewayError``: timeout, 5xx) leaves the outcome unknown while the
      process is alive: the payment stays PENDING (failure message noted) and is committed with
      its key; the invoice stays OPEN. ``reconcile_payment`` later re-sends the same key and
      settles the row with whatever the processor says happened.
    """
    if invoice.status is not InvoiceStatus.OPEN:
        raise ValueError(f"only an OPEN invoice is charged, not a {invoice.status.value} one")
    due = amount_due(invoice)
    if due <= 0:
        mark_paid(session, invoice, 0, now)
        return None
    if payment_method is None or gateway is None:
        raise ValueError("a payment method and its gateway are needed to charge an amount due")
    payment_id = payment_id or uuid.uuid4()
    payment = Payment(
        id=payment_id,
        organization_id=invoice.organization_id,
        invoice_id=invoice.id,
        payment_method_id=payment_method.id,
        gateway=gateway.name,
        idempotency_key=payment_key(payment_id),
        amount=due,
        amount_refunded=0,
        currency=invoice.currency,
        status=PaymentStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    organization = await session.get(Organization, invoice.organization_id)
    await _call_gateway(session, payment, invoice, payment_method.gateway_payment_method_id,
                        organization.gateway_customer_id if organization else None, gateway, now)
    return payment


async def _call_gateway(
    session: AsyncSession, payment: Payment, invoice: Invoice, token: str, customer_id: str | None,
    gateway: PaymentGateway, now: datetime,
) -> None:
    try:
        result = await gateway.charge(
            customer_id=customer_id,
            payment_method_token=token,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
            description=f"Invoice {invoice.number or invoice.id} ({invoice.id})",
        )
    except GatewayError as exc:
        payment.failure_code = PROCESSING_ERROR
        payment.failure_message = f"Processor error; pending reconciliation: {exc}"[:1000]
        payment.updated_at = now
        return
    payment.gateway_payment_id = result.gateway_payment_id
    payment.updated_at = now
    if result.outcome is ChargeOutcome.SUCCEEDED:
        payment.status = PaymentStatus.SUCCEEDED
        payment.failure_code = None
        payment.failure_message = None
        mark_paid(session, invoice, payment.amount, now)
        return
    payment.status = PaymentStatus.FAILED
    payment.failure_code = result.failure_code or "declined"
    payment.failure_message = result.failure_message or "The payment was declined."
    invoice.updated_at = now
    emit_event(
        session, event_type="invoice.payment_failed", organization_id=invoice.organization_id,
        payload=invoice_event_payload(invoice, payment_id=payment.id, failure_code=payment.failure_code,
                                      failure_message=payment.failure_message),
        now=now,
    )


async def reconcile_payment(
    session: AsyncSession, payment: Payment, gateway: PaymentGateway, now: datetime
) -> Payment:
    """Settle a PENDING payment by asking the processor again with the same idempotency key."""
    if payment.status is not PaymentStatus.PENDING:
        return payment
    invoice = await session.get(Invoice, payment.invoice_id)
    method = await session.get(PaymentMethod, payment.payment_method_id) if payment.payment_method_id else None
    if invoice is None or method is None:
        raise ValueError("a pending payment needs its invoice and payment method to be reconciled")
    if invoice.status is not InvoiceStatus.OPEN:
        raise ValueError("a pending payment is reconciled while its invoice is OPEN (before any other payment)")
    organization = await session.get(Organization, payment.organization_id)
    await _call_gateway(session, payment, invoice, method.gateway_payment_method_id,
                        organization.gateway_customer_id if organization else None, gateway, now)
    return payment


# ---- reads ----------------------------------------------------------------------------------

async def list_invoices(
    db, *, organization_id: uuid.UUID | None, status: InvoiceStatus | None, first: int, offset: int
):
    """Invoices newest first (``organization_id`` None: every organization's, for super-admins)."""
    from billing_graphql.services.pagination import fetch_page

    statement = select(Invoice).order_by(Invoice.created_at.desc(), Invoice.number.desc(), Invoice.id.desc())
    if organization_id is not None:
        statement = statement.where(Invoice.organization_id == organization_id)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    async with db.read() as session:
        return await fetch_page(session, statement, first=first, offset=offset)


async def get_invoice(db, invoice_id: uuid.UUID, *, organization_id: uuid.UUID | None) -> Invoice | None:
    """One invoice; with ``organization_id`` only when it belongs to that organization."""
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if organization_id is not None:
        statement = statement.where(Invoice.organization_id == organization_id)
    async with db.read() as session:
        return await session.scalar(statement)
