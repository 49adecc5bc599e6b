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
from datetime import datetime

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


async def _organization_of(db: Database, invoice_id: uuid.UUID) -> uuid.UUID:
    async with db.read() as session:
        organization_id = await session.scalar(select(Invoice.organization_id).where(Invoice.id == invoice_id))
    if organization_id is None:
        raise not_found("Invoice", "invoiceId")
    return organization_id


async def _load(uow: MoneyMove, invoice_id: uuid.UUID) -> Invoice:
    return await uow.session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True))


async def void_invoice(db: Database, actor: Actor | None, *, invoice_id: uuid.UUID, reason: str | None,
                       idempotency_key: str | None, now: datetime) -> Invoice:
    reason = clean_reason(reason)
    clean_key(idempotency_key)
    organization_id = await _organization_of(db, invoice_id)
    request = {"invoice_id": invoice_id, "reason": reason}
    async with money_move(db, organization_id, "void_invoice", idempotency_key, request, actor=actor,
                          now=now) as uow:
        invoice = await _load(uow, invoice_id)
        if uow.replayed:
            return invoice
        check_void(invoice.status)
        pending = await uow.session.scalar(
            select(Payment.id).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
            .limit(1))
        if pending is not None:
            raise BillingError(BillingErrorCode.INVALID_TRANSITION,
                               "A payment of this invoice is pending at the processor; void it once reconciled.",
                               field="invoiceId")
        before = snapshot(invoice, *_FIELDS)
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = now
        invoice.updated_at = now
        credit_returned = 0
        if invoice.credit_applied:
            add_account_credit(uow.organization, invoice.credit_applied, invoice.currency,
                               source=CreditSource.INVOICE_APPLIED, reason=f"given back: invoice {invoice.number} voided",
                               invoice_id=invoice.id, now=now)
            credit_returned = invoice.credit_applied
        coupon_months = await _give_back_coupon(uow, invoice)
        await uow.session.flush()
        uow.audit("invoice.voided", "Invoice", invoice.id, before=before, reason=reason,
                  after={**snapshot(invoice, *_FIELDS), "credit_returned": credit_returned,
                         "coupon_months_returned": coupon_months})
        uow.emit("invoice.voided", invoice_event_payload(invoice, reason=reason))
        uow.done({"invoice_id": invoice.id})
    return invoice


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


async def mark_uncollectible(db: Database, actor: Actor | None, *, invoice_id: uuid.UUID, reason: str | None,
                             idempotency_key: str | None, now: datetime) -> Invoice:
    reason = clean_reason(reason)
    clean_key(idempotency_key)
    organization_id = await _organization_of(db, invoice_id)
    request = {"invoice_id": invoice_id, "reason": reason}
    async with money_move(db, organization_id, "mark_invoice_uncollectible", idempotency_key, request,
                          actor=actor, now=now) as uow:
        invoice = await _load(uow, invoice_id)
        if uow.replayed:
            return invoice
        check_uncollectible(invoice.status)
        before = snapshot(invoice, *_FIELDS)
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        invoice.marked_uncollectible_at = now
        invoice.updated_at = now
        await uow.session.flush()
        uow.audit("invoice.marked_uncollectible", "Invoice", invoice.id, before=before, reason=reason,
                  after=snapshot(invoice, *_FIELDS))
        uow.emit("invoice.marked_uncollectible", invoice_event_payload(invoice, reason=reason))
        uow.done({"invoice_id": invoice.id})
    return invoice
