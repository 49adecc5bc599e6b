"""Refunding an invoice through its gateway.

``refund_invoice`` runs in three steps so that a crash never loses or repeats money:

1. One unit of work (``money_move``: the organization's lock, the caller's idempotency key):
   check the invoice (PAID or
   PARTIALLY_REFUNDED) and the amount (more than zero, at most paid minus refunded), spread
   it over the invoice's SUCCEEDED payments (newest first), write one PENDING ``Refund`` row
   per payment with the idempotency key ``refund_<row id>``, and reserve the amount: the
   payments' and the invoice's ``amount_refunded`` grow at once (their CHECK constraints keep
   refunds within what was paid even if the lock were lost) and the invoice's status follows.
   The caller's idempotency key is stored here, pointing at the refund rows.
2. Outside any transaction: call the gateway (from the ``GatewayRegistry``) for each PENDING
   row with its key. A processor
   that cannot be reached leaves the row PENDING; the same call with the same idempotency
   key later re-drives it with the same gateway key, so the processor never refunds twice.
3. One transaction under the lock again: a refund the gateway accepted becomes SUCCEEDED
   (outbox ``refund.created``); a refused one becomes FAILED and its reservation is released
   (outbox ``refund.failed``). Only rows still PENDING are touched, so concurrent re-drives
   agree.

Audit rows: ``invoice.refund_requested`` (the actor, the reason, the invoice before/after)
in step 1, and ``refund.succeeded`` / ``refund.failed`` per row in step 3.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Payment, PaymentStatus, Refund
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.cards import contains_card_number
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.money import major_to_minor_exact
from billing_graphql.domain.refunds import (
    REFUNDABLE_STATUSES,
    allocate_refund,
    refund_amount,
    status_after_refund,
)
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayError, GatewayRegistry, RefundResult
from billing_graphql.services.billing.charging import pending_on_invoice
from billing_graphql.services.webhooks.objects import event_data
from billing_graphql.services.platform.audit import emit_event, record_audit, snapshot
from billing_graphql.services.platform.idempotency import clean_key
from billing_graphql.services.unit_of_work import MoneyMove, locked_organization, money_move

OPERATION = "refund"
MAX_REASON_LENGTH = 500
_INVOICE_AUDIT_FIELDS = ("status", "amount_paid", "amount_refunded")

@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """What a refund call came to; ``status`` is SUCCEEDED, PENDING or FAILED."""

    status: PaymentStatus
    amount: int  # minor units refunded (or still pending); 0 when all failed
    requested_amount: int
    currency: str
    invoice_id: uuid.UUID
    invoice_status: InvoiceStatus
    refund_ids: tuple[uuid.UUID, ...]
    failure_message: str | None = None
    replayed: bool = False


def clean_note(value: str | None, field: str, limit: int = MAX_REASON_LENGTH) -> str | None:
    """A free-text note (a reason, a memo) trimmed, None when empty; VALIDATION on ``field`` when it
    looks like a card number or is longer than ``limit`` characters."""
    if value is None:
        return None
    value = value.strip()
    if contains_card_number(value):
        raise validation("This looks like a card number; never send card numbers.", field)
    if len(value) > limit:
        raise validation(f"A {field} is at most {limit} characters.", field)
    return value or None


def _clean_reason(reason: str | None) -> str | None:
    return clean_note(reason, "reason")


clean_reason = _clean_reason


def refund_idempotency_key(refund_id: uuid.UUID) -> str:
    """The key the gateway gets for a refund row: derived from its id, stable across retries."""
    return f"refund_{refund_id}"


async def refund_invoice(
    db: Database,
    actor: Actor | None,
    *,
    invoice_id: uuid.UUID,
    amount_minor: int | None = None,
    amount: Decimal | None = None,
    reason: str | None,
    idempotency_key: str | None,
    gateways: GatewayRegistry,
    now: datetime,
) -> RefundOutcome:
    """Refund ``amount_minor`` (or ``amount`` in major units; everything refundable when both
    are None) of a paid invoice. Super-admins only (checked by the API)."""
    if amount_minor is not None and amount is not None:
        raise validation("Give the amount once.", "amount")
    reason = _clean_reason(reason)
    clean_key(idempotency_key)  # a bad key is refused before anything is looked up
    async with db.read() as session:
        found = (await session.execute(
            select(Invoice.organization_id, Invoice.currency).where(Invoice.id == invoice_id)
        )).first()
    if found is None:
        raise not_found("Invoice", "invoiceId")
    organization_id, currency = found
    if amount is not None:
        amount_minor = major_to_minor_exact(amount, currency, "amount")
    request = {"invoice_id": invoice_id, "amount_minor": amount_minor, "reason": reason}

    async with money_move(db, organization_id, OPERATION, idempotency_key, request, actor=actor, now=now,
                          gateways=gateways) as uow:
        if uow.replayed:
            refund_ids = [uuid.UUID(value) for value in uow.stored["refund_ids"]]
        else:
            refund_ids = await _reserve(uow, invoice_id, amount_minor, reason)
            uow.done({"refund_ids": refund_ids})

    results = await drive_refunds(db, refund_ids, gateways, now)
    return await _outcome(db, invoice_id, refund_ids, uow.replayed, results)


async def _reserve(uow: MoneyMove, invoice_id: uuid.UUID, requested: int | None,
                   reason: str | None) -> list[uuid.UUID]:
    """Step 1: PENDING refund rows and the reservation, in the unit of work."""
    invoice = await uow.session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    )
    return await reserve_refund(uow, invoice, requested, reason)


async def reserve_refund(uow: MoneyMove, invoice: Invoice, requested: int | None, reason: str | None, *,
                         credit_note_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Step 1 inside the caller's unit of work (the organization locked, ``invoice`` loaded in it):
    the PENDING refund rows of ``requested`` (all that is refundable when None) and the reservation.
    The caller then runs steps 2 and 3 with ``drive_refunds`` once its transaction is committed.
    ``credit_note_id``: the credit note these refunds pay out (a refused refund voids it)."""
    session, now = uow.session, uow.now
    if invoice.status not in REFUNDABLE_STATUSES:
        raise BillingError(
            BillingErrorCode.NOT_REFUNDABLE,
            f"Only paid invoices can be refunded; this one is {invoice.status.value}.",
            field="invoiceId",
        )
    amount = refund_amount(requested, amount_paid=invoice.amount_paid, amount_refunded=invoice.amount_refunded)
    payments = (
        await session.scalars(
            select(Payment)
            .where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.SUCCEEDED)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
        )
    ).all()
    parts = allocate_refund([(payment, payment.amount - payment.amount_refunded) for payment in payments], amount)
    for payment, _ in parts:
        if not payment.gateway_payment_id:
            raise BillingError(
                BillingErrorCode.NOT_REFUNDABLE, "A payment of this invoice has no gateway reference to refund."
            )
        uow.gateway(payment.gateway, None)

    before = snapshot(invoice, *_INVOICE_AUDIT_FIELDS)
    refund_ids: list[uuid.UUID] = []
    for payment, part in parts:
        refund_id = uuid.uuid4()
        session.add(pending_on_invoice(Refund, invoice, id=refund_id, gateway=payment.gateway,
                                       idempotency_key=refund_idempotency_key(refund_id), amount=part, now=now,
                                       payment_id=payment.id, reason=reason, credit_note_id=credit_note_id))
        payment.amount_refunded += part
        payment.updated_at = now
        refund_ids.append(refund_id)
    invoice.amount_refunded += amount
    invoice.status = status_after_refund(amount_paid=invoice.amount_paid, amount_refunded=invoice.amount_refunded)
    invoice.updated_at = now
    await session.flush()
    uow.audit("invoice.refund_requested", "Invoice", invoice.id, before=before, reason=reason,
              after={**snapshot(invoice, *_INVOICE_AUDIT_FIELDS), "refund_amount": amount,
                     "refund_ids": [str(r) for r in refund_ids]})
    return refund_ids


async def drive_refunds(
    db: Database, refund_ids: Sequence[uuid.UUID], gateways: GatewayRegistry, now: datetime
) -> dict[uuid.UUID, RefundResult]:
    """Steps 2 and 3 for the rows still PENDING (outside any transaction); the gateway's answers by
    refund id."""
    async with db.read() as session:
        pending = (
            await session.execute(
                select(Refund, Payment.gateway_payment_id)
                .join(Payment, Payment.id == Refund.payment_id)
                .where(Refund.id.in_(refund_ids), Refund.status == PaymentStatus.PENDING)
                .order_by(Refund.created_at, Refund.id)
            )
        ).all()
    if not pending:
        return {}
    results: dict[uuid.UUID, RefundResult] = {}
    for refund, gateway_payment_id in pending:
        try:
            gateway = gateways.get(refund.gateway)
            results[refund.id] = await gateway.refund(
                gateway_payment_id=gateway_payment_id,
                amount=refund.amount,
                currency=refund.currency,
                idempotency_key=refund.idempotency_key,
            )
        except (GatewayError, LookupError, ValueError):
            continue  # outcome unknown: stays PENDING, re-driven with the same key
    if results:
        await _settle(db, results, now)
    return results


def refund_event_payload(refund: Refund, invoice_status: InvoiceStatus) -> dict[str, Any]:
    """The outbox payload of ``refund.created`` / ``refund.failed``: the refund as the API shows it,
    with its invoice, payment, the invoice's status and the gateway's reference."""
    return event_data("Refund", refund, ids={"invoice_id": "Invoice", "payment_id": "Payment"},
                      invoice_id=refund.invoice_id, payment_id=refund.payment_id, gateway=refund.gateway,
                      gateway_refund_id=refund.gateway_refund_id, invoice_status=invoice_status)


async def _settle(db: Database, results: dict[uuid.UUID, RefundResult], now: datetime) -> None:
    async with db.write() as session:
        organization_id = await session.scalar(
            select(Refund.organization_id).where(Refund.id == next(iter(results)))
        )
        await locked_organization(session, organization_id)
        refunds = (
            await session.scalars(
                select(Refund)
                .where(Refund.id.in_(list(results)), Refund.status == PaymentStatus.PENDING)
                .execution_options(populate_existing=True)
            )
        ).all()
        if not refunds:
            return
        invoice = await session.scalar(
            select(Invoice).where(Invoice.id == refunds[0].invoice_id).execution_options(populate_existing=True)
        )
        for refund in refunds:
            result = results[refund.id]
            refund.gateway_refund_id = result.gateway_refund_id
            refund.updated_at = now
            if result.succeeded:
                refund.status = PaymentStatus.SUCCEEDED
            else:
                refund.status = PaymentStatus.FAILED
                payment = await session.scalar(
                    select(Payment).where(Payment.id == refund.payment_id).execution_options(populate_existing=True)
                )
                payment.amount_refunded -= refund.amount
                payment.updated_at = now
                invoice.amount_refunded -= refund.amount
                invoice.status = status_after_refund(
                    amount_paid=invoice.amount_paid, amount_refunded=invoice.amount_refunded
                )
                invoice.updated_at = now
                if refund.credit_note_id is not None:
                    await void_refused_credit_note(session, refund.credit_note_id, invoice, now)
            payload = refund_event_payload(refund, invoice.status)
            if not result.succeeded:
                payload["failure_message"] = result.failure_message
            event = "refund.created" if result.succeeded else "refund.failed"
            emit_event(session, event_type=event, organization_id=refund.organization_id, payload=payload, now=now)
            record_audit(
                session,
                actor=None,
                action="refund.succeeded" if result.succeeded else "refund.failed",
                object_type="Refund",
                object_id=refund.id,
                organization_id=refund.organization_id,
                now=now,
                after={"status": refund.status.value, "gateway_refund_id": refund.gateway_refund_id},
                reason=result.failure_message,
            )


async def void_refused_credit_note(session, credit_note_id: uuid.UUID, invoice: Invoice, now: datetime) -> None:
    """The processor refused the refund paying out a credit note: the note is VOID and what it
    credited is released on the invoice (another credit note may be issued instead)."""
    from billing_graphql.db.models import CreditNote
    from billing_graphql.domain.credit_notes import CreditNoteStatus

    note = await session.scalar(
        select(CreditNote).where(CreditNote.id == credit_note_id).execution_options(populate_existing=True)
    )
    if note is None or note.status is CreditNoteStatus.VOID:
        return
    note.status = CreditNoteStatus.VOID
    note.updated_at = now
    invoice.amount_credited -= note.total
    invoice.tax_credited -= note.tax
    record_audit(session, actor=None, action="credit_note.voided", object_type="CreditNote", object_id=note.id,
                 organization_id=note.organization_id, now=now, after={"status": note.status.value},
                 reason="The processor refused its refund.")


async def _outcome(
    db: Database,
    invoice_id: uuid.UUID,
    refund_ids: Sequence[uuid.UUID],
    replayed: bool,
    results: dict[uuid.UUID, RefundResult],
) -> RefundOutcome:
    async with db.read() as session:
        invoice = await session.get(Invoice, invoice_id)
        refunds = (await session.scalars(select(Refund).where(Refund.id.in_(refund_ids)))).all()
    statuses = {refund.status for refund in refunds}
    if PaymentStatus.PENDING in statuses:
        status = PaymentStatus.PENDING
    elif PaymentStatus.SUCCEEDED in statuses:
        status = PaymentStatus.SUCCEEDED
    else:
        status = PaymentStatus.FAILED
    failed = [refund for refund in refunds if refund.status is PaymentStatus.FAILED]
    messages = [results[refund.id].failure_message for refund in failed if refund.id in results]
    return RefundOutcome(
        status=status,
        amount=sum(refund.amount for refund in refunds if refund.status is not PaymentStatus.FAILED),
        requested_amount=sum(refund.amount for refund in refunds),
        currency=invoice.currency,
        invoice_id=invoice.id,
        invoice_status=invoice.status,
        refund_ids=tuple(refund_ids),
        failure_message=(
            "The gateway refused the refund" + (f": {'; '.join(m for m in messages if m)}" if any(messages) else ".")
            if failed
            else None
        ),
        replayed=replayed,
    )
