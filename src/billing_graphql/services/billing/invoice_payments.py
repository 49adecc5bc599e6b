"""Paying an OPEN invoice on demand (``payInvoice``): the customer's answer to dunning.

``pay_invoice`` runs in one transaction under the organization's lock:

1. the idempotency key is looked up (scope: the invoice's organization, operation
   ``pay_invoice``); a replay returns the stored invoice, payment and subscription;
2. the invoice must be OPEN or UNCOLLECTIBLE (DRAFT, PAID, refunded and VOID invoices are a
   VALIDATION error on ``invoiceId``); another organization's invoice is NOT_FOUND;
3. a payment of the invoice left PENDING by a processor fault is settled first
   (``invoicing.reconcile_payment``, same gateway key), so a second charge never races an
   unknown first one; if it turns out to have succeeded, nothing more is charged;
4. otherwise the invoice is charged through ``invoicing.charge_invoice`` with the given
   method (the organization's own, else NOT_FOUND) or the default one (PAYMENT_REQUIRED when
   there is none and something is due). With a client key the payment id is
   ``idempotency.derived_id(org, "pay_invoice", key, "payment")``, so a retry after a crash
   sends the processor the same ``pay_<id>`` key;
5. when the invoice is PAID and it belongs to a PAST_DUE or UNPAID subscription that has no
   other OPEN invoice left, the subscription returns to ACTIVE (``domain.status.transition``)
   and its dunning counters (``retry_count``, ``last_retry_at``, ``next_retry_at``) are reset;
   outbox ``subscription.updated``.

A decline is a result, not an exception: the FAILED payment is committed (outbox
``invoice.payment_failed``), the invoice stays OPEN and ``payment_error`` is PAYMENT_FAILED.
The key's response is stored in both cases, so a retry with the same key replays the decline;
a new attempt (another card) takes a new key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Payment, PaymentStatus, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus, transition
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.platform.audit import emit_event, record_audit, snapshot
from billing_graphql.services.webhooks.objects import event_data
from billing_graphql.services.billing.charging import charge_invoice, payment_error, payment_method_for, reconcile_payment
from billing_graphql.services.billing.invoicing import amount_due
from billing_graphql.services.subscriptions.results import subscription_snapshot
from billing_graphql.services.unit_of_work import MoneyMove, money_move

OPERATION = "pay_invoice"
RECOVERABLE = (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID)
_INVOICE_FIELDS = ("status", "amount_paid", "paid_at")

_NOT_OPEN = {
    InvoiceStatus.DRAFT: "The invoice is a draft; it can be paid once it is finalized.",
    InvoiceStatus.PAID: "The invoice is already paid.",
    InvoiceStatus.PARTIALLY_REFUNDED: "The invoice is already paid (and partly refunded).",
    InvoiceStatus.REFUNDED: "The invoice was paid and refunded.",
    InvoiceStatus.VOID: "The invoice is void; there is nothing to pay.",
}
# An UNCOLLECTIBLE invoice may still be paid (-> PAID), as Stripe allows.
PAYABLE = frozenset({InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE})


@dataclass(slots=True)
class InvoicePayment:
    """What ``pay_invoice`` came to: the invoice, the payment (None when nothing was charged),
    the invoice's subscription (None for a one-off invoice)."""

    invoice: Invoice
    payment: Payment | None
    subscription: Subscription | None
    replayed: bool = False

    @property
    def payment_error(self) -> BillingError | None:
        return payment_error(self.payment)

    def response(self) -> dict[str, Any]:
        return {
            "invoice_id": self.invoice.id,
            "payment_id": self.payment.id if self.payment else None,
            "subscription_id": self.subscription.id if self.subscription else None,
        }


async def _from_response(session: AsyncSession, response: dict[str, Any]) -> InvoicePayment:
    def key(name: str) -> uuid.UUID | None:
        return uuid.UUID(response[name]) if response.get(name) else None

    invoice = await session.get(Invoice, key("invoice_id"))
    payment = await session.get(Payment, key("payment_id")) if key("payment_id") else None
    subscription = await session.get(Subscription, key("subscription_id")) if key("subscription_id") else None
    return InvoicePayment(invoice=invoice, payment=payment, subscription=subscription, replayed=True)


async def pay_invoice(
    db: Database,
    actor: Actor | None,
    *,
    invoice_id: uuid.UUID,
    organization_scope: uuid.UUID | None,
    payment_method_id: uuid.UUID | None,
    idempotency_key: str | None,
    gateways: GatewayRegistry,
    now: datetime,
) -> InvoicePayment:
    """Pay an OPEN invoice. ``organization_scope``: the tenant's organization (another one's
    invoice is NOT_FOUND), or None for super-admins (any organization)."""
    request = {"invoice_id": invoice_id, "payment_method_id": payment_method_id}
    async with db.read() as session:
        statement = select(Invoice.organization_id).where(Invoice.id == invoice_id)
        if organization_scope is not None:
            statement = statement.where(Invoice.organization_id == organization_scope)
        organization_id = await session.scalar(statement)
    if organization_id is None:
        raise not_found("Invoice", "invoiceId")

    async with money_move(db, organization_id, OPERATION, idempotency_key, request, actor=actor, now=now,
                          gateways=gateways) as uow:
        session = uow.session
        if uow.replayed:
            return await _from_response(session, uow.stored)
        invoice = await session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
        )
        if invoice.status not in PAYABLE:
            raise validation(_NOT_OPEN.get(invoice.status, "Only an OPEN invoice can be paid."), "invoiceId")
        method = await payment_method_for(session, organization_id, payment_method_id)
        before = snapshot(invoice, *_INVOICE_FIELDS)

        payment = await _settle_pending(uow, invoice)
        if invoice.status in PAYABLE and (payment is None or payment.status is PaymentStatus.FAILED):
            if amount_due(invoice) > 0 and method is None:
                raise BillingError(BillingErrorCode.PAYMENT_REQUIRED,
                                   "There is no payment method to pay with; add one first.", field="paymentMethodId")
            gateway = uow.gateway(method.gateway) if method is not None else None
            payment = await charge_invoice(session, invoice, method, gateway, now, payment_id=uow.derived_id("payment"))

        subscription = None
        if invoice.subscription_id is not None:
            subscription = await session.scalar(
                select(Subscription).where(Subscription.id == invoice.subscription_id)
                .execution_options(populate_existing=True)
            )
        if invoice.status is InvoiceStatus.PAID and subscription is not None:
            await recover_subscription(session, actor, subscription, invoice, now)
        result = InvoicePayment(invoice=invoice, payment=payment, subscription=subscription)
        uow.audit("invoice.pay", "Invoice", invoice.id, before=before,
                  after={**snapshot(invoice, *_INVOICE_FIELDS),
                         "payment_id": str(payment.id) if payment else None,
                         "payment_status": payment.status.value if payment else None})
        uow.done(result.response())
    return result


async def _settle_pending(uow: MoneyMove, invoice: Invoice) -> Payment | None:
    """Re-drive a payment of this invoice left PENDING by a processor fault (same gateway key).

    Returns the settled payment (SUCCEEDED: the invoice is now PAID; FAILED: a new charge may
    follow), the one still PENDING (the processor still does not answer: nothing more is
    charged), or None when there was none.
    """
    pending = await uow.session.scalar(
        select(Payment).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
        .order_by(Payment.created_at, Payment.id).limit(1)
    )
    if pending is None:
        return None
    try:
        return await reconcile_payment(uow.session, pending, uow.gateway(pending.gateway), uow.now)
    except ValueError:  # its payment method is gone: only an operator can settle it
        raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                           "An earlier payment of this invoice is pending reconciliation; try again later.",
                           field="invoiceId") from None


async def recover_subscription(session: AsyncSession, actor: Actor | None, subscription: Subscription, invoice: Invoice,
                   now: datetime) -> None:
    """PAST_DUE/UNPAID -> ACTIVE once none of the subscription's invoices is left OPEN."""
    if subscription.status not in RECOVERABLE:
        return
    still_open = await session.scalar(
        select(func.count()).select_from(Invoice).where(
            Invoice.subscription_id == subscription.id, Invoice.status == InvoiceStatus.OPEN, Invoice.id != invoice.id
        )
    )
    if still_open:
        return
    before = subscription_snapshot(subscription, "retry_count")
    subscription.status = transition(subscription.status, SubscriptionStatus.ACTIVE)
    subscription.retry_count = 0
    subscription.last_retry_at = None
    subscription.next_retry_at = None
    subscription.updated_at = now
    emit_event(session, event_type="subscription.updated", organization_id=subscription.organization_id,
               payload=event_data("Subscription", subscription, before=before, ids={"invoice_id": "Invoice"},
                                  invoice_id=invoice.id), now=now)
    record_audit(session, actor=actor, action="subscription.recovered", object_type="Subscription",
                 object_id=subscription.id, organization_id=subscription.organization_id, now=now, before=before,
                 after=subscription_snapshot(subscription, "retry_count"))
