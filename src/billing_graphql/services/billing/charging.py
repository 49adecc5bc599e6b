"""Charging invoices, inside the caller's locked transaction.

- ``payment_method_for`` / ``default_payment_method``: the method an invoice is charged to.
- ``charge_invoice``: a PENDING payment row, the gateway call, then SUCCEEDED/PAID or FAILED.
- ``reconcile_payment``: settles a payment left PENDING by a processor fault, with the same key.
- ``bill_subscription``: create, finalize and charge a subscription's invoice.
- ``payment_error``: how a payment that did not succeed reads as a business error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    Organization,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    Subscription,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.domain.invoices import InvoiceDraft
from billing_graphql.domain.plan_change import payment_required
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus, transition
from billing_graphql.gateways.base import ChargeOutcome, GatewayError, PaymentGateway
from billing_graphql.services.billing.invoicing import amount_due, create_invoice, finalize_invoice, invoice_event_payload
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.unit_of_work import MoneyMove

PROCESSING_ERROR = "processing_error"


def payment_error(payment: Payment | None) -> BillingError | None:
    """PAYMENT_FAILED when the charge was declined or is pending after a processor fault."""
    if payment is None or payment.status is PaymentStatus.SUCCEEDED:
        return None
    if payment.status is PaymentStatus.PENDING:
        message = "The payment processor did not answer; the payment is pending and will be reconciled."
    else:
        message = f"The payment failed ({payment.failure_code}): {payment.failure_message}"
    return BillingError(BillingErrorCode.PAYMENT_FAILED, message, field="paymentMethodId")


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


Operation = TypeVar("Operation", Payment, Refund)


def pending_on_invoice(model: type[Operation], invoice: Invoice, *, id: uuid.UUID, gateway: str,
                       idempotency_key: str, amount: int, now: datetime, **columns: Any) -> Operation:
    """A gateway operation on ``invoice``, a charge (``Payment``) or a refund (``Refund``) of
    ``amount`` in its currency: PENDING, written before the gateway is called, keyed by
    ``idempotency_key`` (derived from ``id``); ``columns`` are the model's own."""
    return model(id=id, organization_id=invoice.organization_id, invoice_id=invoice.id, gateway=gateway,
                 idempotency_key=idempotency_key, amount=amount, currency=invoice.currency,
                 status=PaymentStatus.PENDING, created_at=now, updated_at=now, **columns)


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
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise ValueError(f"only an OPEN (or UNCOLLECTIBLE) invoice is charged, not a {invoice.status.value} one")
    due = amount_due(invoice)
    if due <= 0:
        mark_paid(session, invoice, 0, now)
        return None
    if payment_method is None or gateway is None:
        raise ValueError("a payment method and its gateway are needed to charge an amount due")
    payment = pending_payment(invoice, payment_method, gateway, now, payment_id=payment_id or uuid.uuid4())
    session.add(payment)
    await session.flush()
    organization = await session.get(Organization, invoice.organization_id)
    await _call_gateway(session, payment, invoice, payment_method.gateway_payment_method_id,
                        organization.gateway_customer_id if organization else None, gateway, now)
    return payment


def pending_payment(invoice: Invoice, payment_method: PaymentMethod, gateway: PaymentGateway, now: datetime, *,
                    payment_id: uuid.UUID, model: Callable[..., Payment] = Payment) -> Payment:
    """The PENDING payment of what ``invoice`` owes, keyed ``pay_<payment_id>`` (not added);
    ``model`` makes it from its columns (the billing run's batch: a plain record it inserts)."""
    return pending_on_invoice(model, invoice, id=payment_id, gateway=gateway.name,
                              idempotency_key=payment_key(payment_id), amount=amount_due(invoice), now=now,
                              payment_method_id=payment_method.id, amount_refunded=0)


@dataclass(frozen=True, slots=True)
class Charge:
    """One invoice of a batch to charge: what ``charge_invoice`` is given for it."""

    invoice: Invoice
    payment_method: PaymentMethod
    gateway: PaymentGateway
    payment_id: uuid.UUID
    customer_id: str | None
    now: datetime


async def charge_invoices(session: AsyncSession, charges: Sequence[Charge], *, concurrency: int,
                          model: Callable[..., Payment] = Payment) -> list[Payment | BaseException]:
    """``charge_invoice`` for many OPEN invoices that owe something (the billing run's batch): a
    PENDING payment each (made by ``model`` from its columns), then the processor is called for all
    of them, at most ``concurrency`` calls at once, each with its own key; each outcome is applied
    as ``charge_invoice`` applies it (its events added to ``session``). The payments are not added
    to the session: the caller inserts them, with their outcome, once the invoices are. As in
    ``charge_invoice``, nothing is committed before the calls: what keeps a call from being
    repeated after a crash is its key (``payment_id``, derived by the caller from what it bills).
    What a call raised (other than a ``GatewayError``, which leaves its payment PENDING) is
    returned in its place, so that the caller decides about that invoice alone."""
    payments = [pending_payment(charge.invoice, charge.payment_method, charge.gateway, charge.now,
                                payment_id=charge.payment_id, model=model) for charge in charges]
    limit = asyncio.Semaphore(max(concurrency, 1))

    async def call(charge: Charge, payment: Payment) -> Payment:
        async with limit:
            await _call_gateway(session, payment, charge.invoice, charge.payment_method.gateway_payment_method_id,
                                charge.customer_id, charge.gateway, charge.now)
        return payment

    return list(await asyncio.gather(*(call(charge, payment) for charge, payment in zip(charges, payments)),
                                     return_exceptions=True))


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
    # DECLINED and ACTION_REQUIRED alike: no money moved, the payment failed, the invoice stays OPEN.
    payment.status = PaymentStatus.FAILED
    payment.failure_code = result.failure_code or "declined"
    payment.failure_message = result.failure_message or "The payment was declined."
    invoice.updated_at = now
    action_required = result.outcome is ChargeOutcome.ACTION_REQUIRED
    if action_required:
        # The processor's own confirmation page, where it serves one (Stripe: Stripe.js on ours).
        page = getattr(gateway, "payment_page_url", None)
        invoice.payment_url = (page(invoice.id) if page else None) or result.action_url or invoice.payment_url
    emit_event(
        session,
        event_type="invoice.payment_action_required" if action_required else "invoice.payment_failed",
        organization_id=invoice.organization_id,
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
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        raise ValueError("a pending payment is reconciled while its invoice is OPEN (before any other payment)")
    organization = await session.get(Organization, payment.organization_id)
    await _call_gateway(session, payment, invoice, method.gateway_payment_method_id,
                        organization.gateway_customer_id if organization else None, gateway, now)
    return payment


async def payment_method_for(
    session: AsyncSession, organization_id: uuid.UUID, payment_method_id: uuid.UUID | None
) -> PaymentMethod | None:
    """The method asked for (the organization's own, else NOT_FOUND), or the default one."""
    if payment_method_id is None:
        return await default_payment_method(session, organization_id)
    method = await session.scalar(
        select(PaymentMethod).where(PaymentMethod.id == payment_method_id,
                                    PaymentMethod.organization_id == organization_id)
    )
    if method is None:
        raise not_found("Payment method", "paymentMethodId")
    return method


def require_payment_method(draft: InvoiceDraft, method: PaymentMethod | None) -> None:
    if draft.amount_due > 0 and method is None:
        raise payment_required()


async def bill_subscription(
    uow: MoneyMove,
    subscription: Subscription,
    draft: InvoiceDraft,
    *,
    billing_reason: BillingReason,
    period_start: datetime,
    period_end: datetime,
    payment_method: PaymentMethod | None,
) -> tuple[Invoice, Payment | None]:
    """Create, finalize and charge an invoice for ``subscription`` in the unit of work (the
    payment's id is derived from its idempotency key, so a retry sends the processor the same key).

    A declined charge moves an ACTIVE (or TRIALING) subscription to PAST_DUE (through
    ``transition``; PAST_DUE and UNPAID stay as they are); a processor fault leaves the payment
    PENDING and the status as it is (the outcome is unknown).
    """
    require_payment_method(draft, payment_method)
    session, now = uow.session, uow.now
    invoice = await create_invoice(
        session, uow.organization, draft, subscription_id=subscription.id, billing_reason=billing_reason,
        period_start=period_start, period_end=period_end, now=now,
    )
    await finalize_invoice(session, invoice, now)
    gateway = uow.gateway(payment_method.gateway) if payment_method is not None else None
    payment = await charge_invoice(session, invoice, payment_method, gateway, now,
                                   payment_id=uow.derived_id("payment"))
    in_good_standing = subscription.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
    if payment is not None and payment.status is PaymentStatus.FAILED and in_good_standing:
        subscription.status = transition(subscription.status, SubscriptionStatus.PAST_DUE)
    return invoice, payment
