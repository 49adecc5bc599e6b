"""Ending an OPEN invoice by hand: ``voidInvoice`` and ``markInvoiceUncollectible`` (super-admins).

Each runs in one unit of work (the organization's lock, the idempotency key, the audit row and
the outbox event in the same transaction):

- ``void_invoice``: OPEN -> VOID (``domain.credit_notes.check_void``: a paid invoice is
  INVALID_TRANSITION, it is corrected with a credit note). Nothing more is collected: dunning
  and ``payInvoice`` only take OPEN (and, for ``payInvoice``, UNCOLLECTIBLE) invoices. What the
  invoice took is given back: its account credit applied returns to the organization's balance,
  and the coupon months a period invoice spent return to its subscription (a ONCE coupon applies
  again to the next invoice). An invoice with a payment still PENDING at the processor cannot be
  voided until it is reconciled. Event ``invoice.voided``.
- ``mark_uncollectible``: OPEN -> UNCOLLECTIBLE. Dunning stops for it; ``payInvoice`` may still
  pay it (-> PAID). Analytics counts it as bad debt in the month it was marked. Event
  ``invoice.marked_uncollectible``.

Once a subscription has no OPEN invoice left, its dunning has nothing to retry; its status is
left as it is (staff decide: ``updateSubscription``, or a later payment).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    BillingReason,
    Coupon,
    CouponDuration,
    CouponRedemption,
    Invoice,
    Payment,
    PaymentStatus,
    Subscription,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.domain.credit_notes import check_uncollectible, check_void, coupon_months_given_back
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.services.billing.credit import add_account_credit
from billing_graphql.services.billing.invoicing import invoice_event_payload
from billing_graphql.services.payments.refunds import clean_reason
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.platform.idempotency import clean_key
from billing_graphql.services.unit_of_work import MoneyMove, money_move

_FIELDS = ("status", "voided_at", "marked_uncollectible_at")
_PERIOD_REASONS = (BillingReason.SUBSCRIPTION_CREATE, BillingReason.SUBSCRIPTION_CYCLE)


@dataclass(frozen=True, slots=True)
class _Ending:
    """How an OPEN invoice is ended by hand: the operation (idempotency), the check, the status,
    the column stamped with the instant, and the event (also the audit action)."""

    operation: str
    check: Callable[[InvoiceStatus], None]
    status: InvoiceStatus
    stamp: str
    event: str


_VOID = _Ending("void_invoice", check_void, InvoiceStatus.VOID, "voided_at", "invoice.voided")
_UNCOLLECTIBLE = _Ending("mark_invoice_uncollectible", check_uncollectible, InvoiceStatus.UNCOLLECTIBLE,
                         "marked_uncollectible_at", "invoice.marked_uncollectible")


async def _end_invoice(db: Database, actor: Actor | None, ending: _Ending, *, invoice_id: uuid.UUID,
                       reason: str | None, idempotency_key: str | None, now: datetime,
                       give_back: Callable[[MoneyMove, Invoice], Awaitable[dict[str, Any]]] | None = None) -> Invoice:
    """The unit of work both operations share: check, move, stamp, audit, event (``give_back``
    adds what it returned to the audit row)."""
    reason = clean_reason(reason)
    clean_key(idempotency_key)
    async with db.read() as session:
        organization_id = await session.scalar(select(Invoice.organization_id).where(Invoice.id == invoice_id))
    if organization_id is None:
        raise not_found("Invoice", "invoiceId")
    request = {"invoice_id": invoice_id, "reason": reason}
    async with money_move(db, organization_id, ending.operation, idempotency_key, request, actor=actor,
                          now=now) as uow:
        invoice = await uow.session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True))
        if uow.replayed:
            return invoice
        ending.check(invoice.status)
        before = snapshot(invoice, *_FIELDS)
        returned = await give_back(uow, invoice) if give_back is not None else {}
        invoice.status = ending.status
        setattr(invoice, ending.stamp, now)
        invoice.updated_at = now
        await uow.session.flush()
        uow.audit(ending.event, "Invoice", invoice.id, before=before, reason=reason,
                  after={**snapshot(invoice, *_FIELDS), **returned})
        uow.emit(ending.event, invoice_event_payload(invoice, reason=reason))
        uow.done({"invoice_id": invoice.id})
    return invoice


async def void_invoice(db: Database, actor: Actor | None, *, invoice_id: uuid.UUID, reason: str | None,
                       idempotency_key: str | None, now: datetime) -> Invoice:
    return await _end_invoice(db, actor, _VOID, invoice_id=invoice_id, reason=reason,
                              idempotency_key=idempotency_key, now=now, give_back=_give_back)


async def mark_uncollectible(db: Database, actor: Actor | None, *, invoice_id: uuid.UUID, reason: str | None,
                             idempotency_key: str | None, now: datetime) -> Invoice:
    return await _end_invoice(db, actor, _UNCOLLECTIBLE, invoice_id=invoice_id, reason=reason,
                              idempotency_key=idempotency_key, now=now)


async def _give_back(uow: MoneyMove, invoice: Invoice) -> dict[str, Any]:
    """A void: refused while a payment is pending at the processor; then the account credit applied
    and the coupon months spent go back."""
    pending = await uow.session.scalar(
        select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING).limit(1))
    if pending is not None:
        raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                           "A payment of this invoice is pending at the processor; void it once reconciled.",
                           field="invoiceId")
    if invoice.credit_applied:
        add_account_credit(uow.organization, invoice.credit_applied, invoice.currency,
                           source=CreditSource.INVOICE_APPLIED, reason=f"given back: invoice {invoice.number} voided",
                           invoice_id=invoice.id, now=uow.now)
    return {"credit_returned": invoice.credit_applied, "coupon_months_returned": await _give_back_coupon(uow, invoice)}


async def _give_back_coupon(uow: MoneyMove, invoice: Invoice) -> int:
    """The coupon months a voided period invoice spent go back to its subscription; how many."""
    if not invoice.discount or invoice.subscription_id is None or invoice.billing_reason not in _PERIOD_REASONS:
        return 0
    session = uow.session
    subscription = await session.scalar(
        select(Subscription).where(Subscription.id == invoice.subscription_id)
        .execution_options(populate_existing=True))
    coupon_id = subscription.coupon_id if subscription is not None else None
    if subscription is not None and coupon_id is None:  # spent: the one its last redemption named
        coupon_id = await session.scalar(
            select(CouponRedemption.coupon_id).where(CouponRedemption.subscription_id == subscription.id)
            .order_by(CouponRedemption.redeemed_at.desc()).limit(1))
    if coupon_id is None:
        return 0
    coupon = await session.get(Coupon, coupon_id)
    if coupon.duration is CouponDuration.FOREVER:
        return 0
    months = subscription.billing_period.months
    remaining = subscription.coupon_periods_remaining if subscription.coupon_id is not None else 0
    restored = coupon_months_given_back(remaining, months, once=coupon.duration is CouponDuration.ONCE,
                                        duration_in_months=coupon.duration_in_months)
    subscription.coupon_id = coupon.id
    subscription.coupon_periods_remaining = restored
    subscription.updated_at = uow.now
    return (restored or 0) - (remaining or 0)
