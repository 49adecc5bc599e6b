"""Credit notes: correcting a finalized invoice by an amount, tax included (``createCreditNote``).

Two entry points:

- ``create_credit_note(uow, invoice, ...)``: the use case's body, inside the CALLER's unit of
  work (``services.unit_of_work.money_move``: the organization locked, ``invoice`` loaded in its
  session). Other services call it too (an immediate cancellation with proration credits the
  unused part of the period with it). It validates, numbers the note (gapless
  ``CN-YYYYMM-000001``), writes it with its lines, records on the invoice what is credited
  (``amount_credited``, ``tax_credited``, and ``credited_against_due`` for REDUCE_AMOUNT_DUE),
  carries the outcome out, and writes the audit row and the ``credit_note.created`` event.
  With the outcome REFUND it only reserves the refund (``refunds.reserve_refund``: PENDING rows,
  the refund rules and races of ``refund``; the unit of work must have been opened with
  ``gateways=``); the caller calls ``drive_credit_note_refunds(db, issued.refund_ids, gateways,
  now)`` after its transaction is committed, outside it, for the processor.
- ``issue_credit_note(db, actor, ...)``: the ``createCreditNote`` mutation: its own unit of work
  (idempotency key, lock), then the refunds driven.

Race safety: the organization's lock serializes credit notes of one invoice, and the invoice's
CHECK constraints (``amount_credited <= total``, ``tax_credited <= tax``, ``amount_paid +
credited_against_due <= total - credit_applied``) hold even if the lock were lost.

Outcomes: REFUND refunds the note's total through the invoice's payments (the invoice becomes
PARTIALLY_REFUNDED or REFUNDED by the refund rules; a refund the processor refuses voids the
note and releases what it credited); CREDIT_BALANCE adds the total to the organization's
account balance (the invoice stays PAID); REDUCE_AMOUNT_DUE lowers the amount due of an OPEN or
UNCOLLECTIBLE invoice, which becomes PAID when nothing is left due (its subscription then
recovers from dunning like after a payment).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    CreditNote,
    CreditNoteLine,
    CreditNoteNumberSequence,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentStatus,
    Refund,
    Subscription,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.domain.credit_notes import (
    MAX_LINES,
    MAX_MEMO_LENGTH,
    CreditNoteOutcome,
    CreditNoteReason,
    CreditNoteStatus,
    InvoiceCredit,
    check_outcome,
    credit_amounts,
    line_creditable,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.money import major_to_minor_exact
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.credit import add_account_credit
from billing_graphql.services.billing.document_pdf import label
from billing_graphql.services.billing.invoicing import amount_due, next_in_series
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.platform.idempotency import clean_key
from billing_graphql.services.unit_of_work import MoneyMove, money_move

OPERATION = "create_credit_note"
_INVOICE_FIELDS = ("status", "amount_credited", "credited_against_due", "tax_credited", "amount_refunded")


@dataclass(frozen=True, slots=True)
class CreditLineRequest:
    """A line of a credit note: the invoice line it credits and how much (tax included; None:
    all that is left of the line)."""

    invoice_line_id: uuid.UUID
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class IssuedCreditNote:
    credit_note: CreditNote
    invoice: Invoice
    refund_ids: tuple[uuid.UUID, ...] = ()
    replayed: bool = False


def credit_note_number(month: str, value: int) -> str:
    return f"CN-{month}-{value:06d}"


def credit_note_pdf_path(credit_note_id: uuid.UUID) -> str:
    return f"/credit-notes/{credit_note_id}.pdf"


def clean_memo(memo: str | None) -> str | None:
    from billing_graphql.services.payments.refunds import clean_note

    return clean_note(memo, "memo", MAX_MEMO_LENGTH)


def _invoice_credit(invoice: Invoice) -> InvoiceCredit:
    return InvoiceCredit(status=invoice.status, total=invoice.total, tax=invoice.tax,
                         credit_applied=invoice.credit_applied, amount_paid=invoice.amount_paid,
                         amount_credited=invoice.amount_credited, credited_against_due=invoice.credited_against_due,
                         tax_credited=invoice.tax_credited)


async def _line_drafts(uow: MoneyMove, invoice: Invoice, amount: int | None,
                       lines: Sequence[CreditLineRequest] | None) -> list[tuple[uuid.UUID | None, str, int]]:
    """(invoice line id, description, amount) of each line of the note."""
    if (amount is None) == (lines is None):
        raise validation("Give either lines or an amount.", "amount")
    if amount is not None:
        return [(None, label("credit_on_invoice", number=invoice.number), amount)]
    if not lines:
        raise validation("Give at least one line.", "lines")
    if len(lines) > MAX_LINES:
        raise validation(f"A credit note has at most {MAX_LINES} lines.", "lines")
    session = uow.session
    invoice_lines = {
        line.id: line for line in (await session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))).all()
    }
    credited = dict((await session.execute(
        select(CreditNoteLine.invoice_line_id, func.sum(CreditNoteLine.amount))
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(CreditNote.invoice_id == invoice.id, CreditNote.status == CreditNoteStatus.ISSUED,
               CreditNoteLine.invoice_line_id.is_not(None))
        .group_by(CreditNoteLine.invoice_line_id)
    )).all())
    drafts: list[tuple[uuid.UUID | None, str, int]] = []
    seen: set[uuid.UUID] = set()
    for index, request in enumerate(lines):
        line = invoice_lines.get(request.invoice_line_id)
        if line is None:
            raise not_found("Invoice line", f"lines.{index}.invoiceLineId")
        if line.id in seen:
            raise validation("Each invoice line is credited once per credit note.", f"lines.{index}.invoiceLineId")
        seen.add(line.id)
        left = line_creditable(line.amount, subtotal=invoice.subtotal, total=invoice.total,
                               already=int(credited.get(line.id) or 0))
        value = left if request.amount is None else request.amount
        if value <= 0 or value > left:
            raise BillingError(BillingErrorCode.CREDIT_EXCEEDS_INVOICE,
                               f"A line credits more than zero and at most what is left of it ({left} minor units).",
                               field=f"lines.{index}.amount", creditable=left)
        drafts.append((line.id, line.description, value))
    return drafts


async def create_credit_note(
    uow: MoneyMove,
    invoice: Invoice,
    *,
    reason: CreditNoteReason,
    outcome: CreditNoteOutcome,
    amount: int | None = None,
    lines: Sequence[CreditLineRequest] | None = None,
    memo: str | None = None,
) -> IssuedCreditNote:
    """Issue a credit note on ``invoice`` inside the caller's unit of work (see the module's
    docstring): ``amount`` (minor units, tax included) or ``lines``, never both. Raises
    ``BillingError`` (the caller's transaction rolls back) on bad input. With REFUND, call
    ``drive_credit_note_refunds`` with the result's ``refund_ids`` after the commit."""
    session, now = uow.session, uow.now
    if invoice.organization_id != uow.organization_id:
        raise not_found("Invoice", "invoiceId")
    memo = clean_memo(memo)
    check_outcome(invoice.status, outcome)
    drafts = await _line_drafts(uow, invoice, amount, lines)
    total = sum(value for _, _, value in drafts)
    figures = credit_amounts(_invoice_credit(invoice), total, outcome,
                             field="amount" if amount is not None else "lines")
    if outcome is CreditNoteOutcome.REDUCE_AMOUNT_DUE and await session.scalar(
            select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
            .limit(1)):
        # The pending charge asked for the amount due as it was: it may still succeed.
        raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                           "A payment of this invoice is pending at the processor; credit it once reconciled.",
                           field="invoiceId")
    if outcome is CreditNoteOutcome.CREDIT_BALANCE:
        holding = uow.organization.credit_currency
        if uow.organization.credit_balance and holding not in (None, invoice.currency):
            raise validation(f"The organization holds account credit in {holding}, not {invoice.currency}.",
                             "outcome")

    before = snapshot(invoice, *_INVOICE_FIELDS)
    month = now.strftime("%Y%m")
    note = CreditNote(
        id=uuid.uuid4(), organization_id=invoice.organization_id, invoice_id=invoice.id,
        number=credit_note_number(month, await next_in_series(session, CreditNoteNumberSequence, month)),
        status=CreditNoteStatus.ISSUED, reason=reason, outcome=outcome, memo=memo, currency=invoice.currency,
        subtotal=figures.subtotal, tax=figures.tax, total=figures.total,
        tax_name=invoice.tax_name, tax_rate=invoice.tax_rate, tax_base_numerator=invoice.tax_base_numerator,
        tax_base_denominator=invoice.tax_base_denominator, created_at=now, updated_at=now,
    )
    note.lines = [CreditNoteLine(id=uuid.uuid4(), invoice_line_id=line_id, position=position, description=text,
                                 amount=value) for position, (line_id, text, value) in enumerate(drafts)]
    session.add(note)
    invoice.amount_credited += figures.total
    invoice.tax_credited += figures.tax
    invoice.updated_at = now
    await session.flush()

    refund_ids: list[uuid.UUID] = []
    if outcome is CreditNoteOutcome.REFUND:
        from billing_graphql.services.payments.refunds import reserve_refund

        reason_text = f"Credit note {note.number}" + (f": {memo}" if memo else "")
        refund_ids = await reserve_refund(uow, invoice, figures.total, reason_text, credit_note_id=note.id)
    elif outcome is CreditNoteOutcome.CREDIT_BALANCE:
        add_account_credit(uow.organization, figures.total, invoice.currency, source=CreditSource.CREDIT_NOTE,
                           reason=f"credit note {note.number}", invoice_id=invoice.id, now=now)
    else:
        invoice.credited_against_due += figures.total
        if amount_due(invoice) == 0:
            await _paid_by_credit(uow, invoice)
    await session.flush()
    uow.record("credit_note.created", "CreditNote", note.id, subject=note, before=before,
               after={**snapshot(invoice, *_INVOICE_FIELDS), "credit_note_number": note.number,
                      "total": note.total, "tax": note.tax, "outcome": outcome.value, "reason": reason.value,
                      "refund_ids": [str(refund_id) for refund_id in refund_ids]})
    return IssuedCreditNote(credit_note=note, invoice=invoice, refund_ids=tuple(refund_ids))


async def _paid_by_credit(uow: MoneyMove, invoice: Invoice) -> None:
    """Nothing is left due: the invoice is PAID (``invoice.paid``), and its subscription leaves
    dunning when no other invoice of it is OPEN."""
    from billing_graphql.services.billing.charging import mark_paid
    from billing_graphql.services.billing.invoice_payments import recover_subscription

    if invoice.status is InvoiceStatus.UNCOLLECTIBLE:
        invoice.status = InvoiceStatus.OPEN  # UNCOLLECTIBLE -> PAID, as a payment would
    mark_paid(uow.session, invoice, 0, uow.now)
    if invoice.subscription_id is not None:
        subscription = await uow.session.scalar(
            select(Subscription).where(Subscription.id == invoice.subscription_id)
            .execution_options(populate_existing=True))
        if subscription is not None:
            await recover_subscription(uow.session, uow.actor, subscription, invoice, uow.now)


async def drive_credit_note_refunds(db: Database, refund_ids: Sequence[uuid.UUID], gateways: GatewayRegistry,
                                    now: datetime) -> None:
    """After the commit: the processor refunds a REFUND credit note's reserved refunds (steps 2 and
    3 of ``refunds``; a refused one voids the note)."""
    if refund_ids:
        from billing_graphql.services.payments.refunds import drive_refunds

        await drive_refunds(db, refund_ids, gateways, now)


async def issue_credit_note(
    db: Database,
    actor: Actor | None,
    *,
    invoice_id: uuid.UUID,
    reason: CreditNoteReason,
    outcome: CreditNoteOutcome,
    amount: Decimal | None = None,
    lines: Sequence[tuple[uuid.UUID, Decimal | None]] | None = None,
    memo: str | None = None,
    idempotency_key: str | None,
    gateways: GatewayRegistry,
    now: datetime,
) -> IssuedCreditNote:
    """``createCreditNote`` (super-admins; checked by the API): amounts in major units of the
    invoice's currency. Replaying a key returns the same note."""
    clean_key(idempotency_key)
    memo = clean_memo(memo)
    async with db.read() as session:
        found = (await session.execute(
            select(Invoice.organization_id, Invoice.currency).where(Invoice.id == invoice_id))).first()
    if found is None:
        raise not_found("Invoice", "invoiceId")
    organization_id, currency = found
    amount_minor = major_to_minor_exact(amount, currency, "amount") if amount is not None else None
    line_requests = None
    if lines is not None:
        line_requests = [
            CreditLineRequest(line_id, major_to_minor_exact(value, currency, f"lines.{index}.amount")
                              if value is not None else None)
            for index, (line_id, value) in enumerate(lines)
        ]
    request: dict[str, Any] = {
        "invoice_id": invoice_id, "reason": reason.value, "outcome": outcome.value, "memo": memo,
        "amount": amount_minor,
        "lines": None if line_requests is None else [[item.invoice_line_id, item.amount] for item in line_requests],
    }
    async with money_move(db, organization_id, OPERATION, idempotency_key, request, actor=actor, now=now,
                          gateways=gateways) as uow:
        if uow.replayed:
            note = await uow.session.get(CreditNote, uuid.UUID(uow.stored["credit_note_id"]))
            refund_ids = tuple(uuid.UUID(value) for value in uow.stored["refund_ids"])
        else:
            invoice = await uow.session.scalar(
                select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True))
            issued = await create_credit_note(uow, invoice, reason=reason, outcome=outcome, amount=amount_minor,
                                              lines=line_requests, memo=memo)
            note, refund_ids = issued.credit_note, issued.refund_ids
            uow.done({"credit_note_id": note.id, "refund_ids": list(refund_ids)})
    await drive_credit_note_refunds(db, refund_ids, gateways, now)
    async with db.read() as session:
        note = await session.get(CreditNote, note.id)
        invoice = await session.get(Invoice, note.invoice_id)
    return IssuedCreditNote(credit_note=note, invoice=invoice, refund_ids=refund_ids, replayed=uow.replayed)


# ---- reads ----------------------------------------------------------------------------------

def credit_notes_statement(organization_id: uuid.UUID):
    """An organization's credit notes, newest first (read by ``list_credit_notes`` and the compiled SQL tier)."""
    return (select(CreditNote).where(CreditNote.organization_id == organization_id)
            .order_by(CreditNote.created_at.desc(), CreditNote.number.desc(), CreditNote.id.desc()))


async def list_credit_notes(db: Database, *, organization_id: uuid.UUID, first: int, offset: int):
    """An organization's credit notes, newest first."""
    from billing_graphql.services.pagination import read_page

    return await read_page(db, credit_notes_statement(organization_id), first=first, offset=offset)


async def credit_note_refunds(db: Database, credit_note_id: uuid.UUID) -> list[Refund]:
    async with db.read() as session:
        return list((await session.scalars(
            select(Refund).where(Refund.credit_note_id == credit_note_id).order_by(Refund.created_at, Refund.id)
        )).all())
