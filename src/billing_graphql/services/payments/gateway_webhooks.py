"""Inbound gateway webhooks: a verified event is recorded once per (gateway, event id) and its
outcome applied in the same transaction, under the organization's lock:

- a captured payment: its PENDING payment becomes SUCCEEDED and the invoice PAID (outbox
  ``invoice.paid``); a PAST_DUE or UNPAID subscription with no other open invoice returns to
  ACTIVE (outbox ``subscription.updated``);
- a failed payment: its PENDING payment becomes FAILED (outbox ``invoice.payment_failed``);
- a processed refund: its PENDING refund becomes SUCCEEDED (outbox ``refund.created``).

The same event id again changes nothing (a unique constraint decides, also between concurrent
deliveries). An event for a payment we do not know, or one already settled, is recorded and
otherwise ignored. Parsing a gateway's body into a ``GatewayEvent`` happens in ``parse_*``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import (
    GatewayEvent,
    Invoice,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    Subscription,
)
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.services.billing.invoice_payments import recover_subscription
from billing_graphql.services.billing.charging import mark_paid
from billing_graphql.services.billing.invoicing import invoice_event_payload
from billing_graphql.services.payments.refunds import refund_event_payload
from billing_graphql.services.payments.payment_methods import _AUDIT_FIELDS
from billing_graphql.services.platform.audit import emit_event, record_audit, record_change, snapshot

EVENT_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
MAX_EVENT_NAME = 80
MAX_REFERENCE = 200
CAPTURED, FAILED, REFUND_PROCESSED = "payment.captured", "payment.failed", "refund.processed"
AUTHENTICATION_REQUIRED = "authentication_required"
CARD_SAVED, CARD_DETACHED, DISPUTED = "payment_method.saved", "payment_method.detached", "payment.disputed"


class InvalidEvent(ValueError):
    """A verified body that is not an event we can read (400)."""


@dataclass(frozen=True, slots=True)
class InboundEvent:
    gateway: str
    event_id: str
    event_type: str
    payment_reference: str | None = None  # the processor's payment id
    payment_key: str | None = None  # our idempotency key for the charge, when echoed back
    refund_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    action: str | None = None  # what to do, when the processor's event name is not ours (Stripe)
    customer_reference: str | None = None
    payment_method_reference: str | None = None
    applied: str | None = None  # the outcome, when applying it needed the processor (recorded as is)


def _text(value: Any, limit: int = MAX_REFERENCE) -> str | None:
    if isinstance(value, str) and value and len(value) <= limit and "\x00" not in value and _encodable(value):
        return value
    return None


def _encodable(value: str) -> bool:
    """Not a lone surrogate (valid JSON, yet no database takes it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _event_type(value: Any) -> str:
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_EVENT_NAME or not EVENT_NAME.match(value):
        raise InvalidEvent("The body has no valid event type.")
    return value


def parse_razorpay(payload: Any, event_id: str) -> InboundEvent:
    """Razorpay: ``{"event": "payment.captured", "payload": {"payment": {"entity": {...}}}}``."""
    if not isinstance(payload, dict):
        raise InvalidEvent("The body is not an event object.")
    event_type = _event_type(payload.get("event"))
    entities = payload.get("payload") if isinstance(payload.get("payload"), dict) else {}

    def entity(name: str) -> dict[str, Any]:
        wrapper = entities.get(name)
        found = wrapper.get("entity") if isinstance(wrapper, dict) else None
        return found if isinstance(found, dict) else {}

    payment, refund = entity("payment"), entity("refund")
    notes = payment.get("notes") if isinstance(payment.get("notes"), dict) else {}
    return InboundEvent(
        gateway="razorpay", event_id=event_id, event_type=event_type,
        payment_reference=_text(payment.get("id")) or _text(refund.get("payment_id")),
        payment_key=_text(notes.get("idempotency_key")),
        refund_reference=_text(refund.get("id")),
        failure_code=_text(payment.get("error_code"), 64),
        failure_message=_text(payment.get("error_description"), 1000),
    )


def parse_sandbox(payload: Any, event_id: str) -> InboundEvent:
    """Sandbox: ``{"type": "payment.captured", "data": {"payment_id", "idempotency_key", "refund_id",
    "failure_code", "failure_message"}}``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data", {}), dict):
        raise InvalidEvent("The body is not an event object.")
    data = payload.get("data", {})
    return InboundEvent(
        gateway="sandbox", event_id=event_id, event_type=_event_type(payload.get("type")),
        payment_reference=_text(data.get("payment_id")), payment_key=_text(data.get("idempotency_key")),
        refund_reference=_text(data.get("refund_id")), failure_code=_text(data.get("failure_code"), 64),
        failure_message=_text(data.get("failure_message"), 1000),
    )


# Stripe's events we act on, and what each means here.
STRIPE_ACTIONS = {
    "payment_intent.succeeded": CAPTURED,
    "payment_intent.payment_failed": FAILED,
    "charge.refunded": REFUND_PROCESSED,
    "refund.updated": REFUND_PROCESSED,
    "setup_intent.succeeded": CARD_SAVED,
    "payment_method.detached": CARD_DETACHED,
    "charge.dispute.created": DISPUTED,
}


def parse_stripe(payload: Any, event_id: str) -> InboundEvent:
    """Stripe: ``{"id": "evt_...", "type": "payment_intent.succeeded", "data": {"object": {...}}}``;
    a type we do not act on is refused (400), as the issue asks."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidEvent("The body is not a Stripe event object.")
    event_type = _event_type(payload.get("type"))
    action = STRIPE_ACTIONS.get(event_type)
    if action is None:
        raise InvalidEvent(f"Stripe event type {event_type!r} is not one this gateway handles.")
    obj = payload["data"].get("object")
    if not isinstance(obj, dict):
        raise InvalidEvent("The Stripe event has no data.object.")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), dict) else {}
    refund_reference = None
    payment_reference = _text(obj.get("id")) if event_type.startswith("payment_intent.") else None
    if event_type == "refund.updated":
        refund_reference = _text(obj.get("id"))
        payment_reference = _text(obj.get("payment_intent"))
    elif event_type == "charge.refunded":
        refunds = obj.get("refunds") if isinstance(obj.get("refunds"), dict) else {}
        listed = refunds.get("data") if isinstance(refunds.get("data"), list) else []
        refund_reference = next((_text(item.get("id")) for item in listed if isinstance(item, dict)), None)
        payment_reference = _text(obj.get("payment_intent"))
    if event_type == "refund.updated" and obj.get("status") != "succeeded":
        action = f"ignored: refund {str(obj.get('status'))[:20]}"
    payment_method = _text(obj.get("id")) if event_type == "payment_method.detached" else _text(obj.get("payment_method"))
    if event_type == "charge.dispute.created":
        payment_reference = _text(obj.get("payment_intent"))
        error = {"code": _text(obj.get("reason"), 64), "message": f"Disputed: {_text(obj.get('reason'), 64)}"}
    return InboundEvent(
        gateway="stripe", event_id=event_id, event_type=event_type, action=action,
        payment_reference=payment_reference, payment_key=_text(metadata.get("idempotency_key"), 100),
        refund_reference=refund_reference,
        failure_code=_text(error.get("decline_code"), 64) or _text(error.get("code"), 64),
        failure_message=_text(error.get("message"), 1000),
        customer_reference=_text(obj.get("customer")), payment_method_reference=payment_method,
    )


@dataclass(frozen=True, slots=True)
class Applied:
    duplicate: bool
    result: str


async def already_recorded(db: Database, event: InboundEvent) -> bool:
    async with db.read() as session:
        return await session.scalar(select(GatewayEvent.id).where(
            GatewayEvent.gateway == event.gateway, GatewayEvent.event_id == event.event_id)) is not None


async def apply_gateway_event(db: Database, event: InboundEvent, now: datetime) -> Applied:
    """Record the event once and apply its outcome; a repeated event id is a duplicate."""
    async with db.read() as session:
        organization_id = await _organization_of(session, event)
    try:
        async with db.write() as session:
            if organization_id is not None:
                await lock_organization(session, organization_id)
            if await session.scalar(select(GatewayEvent.id).where(
                GatewayEvent.gateway == event.gateway, GatewayEvent.event_id == event.event_id)) is not None:
                return Applied(True, "duplicate")
            record = GatewayEvent(gateway=event.gateway, event_id=event.event_id, event_type=event.event_type,
                                  result="received", received_at=now)
            session.add(record)
            await session.flush()  # a concurrent delivery of the same id fails here or at commit
            record.result = (await _apply(session, event, now))[:200]
            result = record.result
    except IntegrityError:
        return Applied(True, "duplicate")
    return Applied(False, result)


def _action(event: InboundEvent) -> str:
    return event.action or event.event_type


async def _organization_of(session: AsyncSession, event: InboundEvent) -> uuid.UUID | None:
    if _action(event) == CARD_DETACHED:
        return await session.scalar(select(PaymentMethod.organization_id).where(
            PaymentMethod.gateway == event.gateway,
            PaymentMethod.gateway_payment_method_id == event.payment_method_reference).limit(1))
    if _action(event) == REFUND_PROCESSED and event.refund_reference:
        return await session.scalar(select(Refund.organization_id).where(
            Refund.gateway == event.gateway, Refund.gateway_refund_id == event.refund_reference))
    payment = _payment_match(event)
    if payment is None:
        return None
    return await session.scalar(select(Payment.organization_id).where(payment).limit(1))


def _payment_match(event: InboundEvent):
    conditions = []
    if event.payment_reference:
        conditions.append(Payment.gateway_payment_id == event.payment_reference)
    if event.payment_key:
        conditions.append(Payment.idempotency_key == event.payment_key)
    if not conditions:
        return None
    return (Payment.gateway == event.gateway) & or_(*conditions)


async def _event_payment(session: AsyncSession, event: InboundEvent) -> Payment | None:
    match = _payment_match(event)
    if match is None:
        return None
    return await session.scalar(select(Payment).where(match).execution_options(populate_existing=True).limit(1))


async def _apply(session: AsyncSession, event: InboundEvent, now: datetime) -> str:
    action = _action(event)
    if event.applied is not None:
        return event.applied
    if action == REFUND_PROCESSED:
        return await _refund_processed(session, event, now)
    if action == CARD_DETACHED:
        return await _card_detached(session, event, now)
    if action == DISPUTED:
        return await _disputed(session, event, now)
    if action not in (CAPTURED, FAILED):
        return action if action.startswith("ignored") else f"ignored: {event.event_type} is not acted on"
    payment = await _event_payment(session, event)
    if payment is None:
        return "ignored: no such payment"
    confirmed_later = (action == CAPTURED and payment.status is PaymentStatus.FAILED
                       and payment.failure_code == AUTHENTICATION_REQUIRED)
    if payment.status is not PaymentStatus.PENDING and not confirmed_later:
        return f"ignored: payment already {payment.status.value}"
    invoice = await session.scalar(
        select(Invoice).where(Invoice.id == payment.invoice_id).execution_options(populate_existing=True))
    payment.gateway_payment_id = payment.gateway_payment_id or event.payment_reference
    payment.updated_at = now
    before = {"status": payment.status.value}
    if action == CAPTURED:
        # PENDING, or FAILED for want of the customer's confirmation (3-D Secure) that came later.
        payment.status = PaymentStatus.SUCCEEDED
        payment.failure_code = payment.failure_message = None
        if invoice.status is InvoiceStatus.OPEN:
            mark_paid(session, invoice, payment.amount, now)
            if invoice.status is InvoiceStatus.PAID and invoice.subscription_id is not None:
                subscription = await session.scalar(
                    select(Subscription).where(Subscription.id == invoice.subscription_id)
                    .execution_options(populate_existing=True))
                await recover_subscription(session, None, subscription, invoice, now)
    else:
        payment.status = PaymentStatus.FAILED
        payment.failure_code = event.failure_code or "payment_failed"
        payment.failure_message = event.failure_message or "The processor reported the payment failed."
        invoice.updated_at = now
        emit_event(session, event_type="invoice.payment_failed", organization_id=invoice.organization_id,
                   payload=invoice_event_payload(invoice, payment_id=payment.id, failure_code=payment.failure_code,
                                                 failure_message=payment.failure_message), now=now)
    record_audit(session, actor=None, action=f"payment.{payment.status.value.lower()}", object_type="Payment",
                 object_id=payment.id, organization_id=payment.organization_id, now=now, before=before,
                 after={"status": payment.status.value}, reason=f"{event.gateway} webhook {event.event_id}")
    return f"payment {payment.status.value}"


async def _refund_processed(session: AsyncSession, event: InboundEvent, now: datetime) -> str:
    refund = await session.scalar(
        select(Refund).where(Refund.gateway == event.gateway, Refund.gateway_refund_id == event.refund_reference)
        .execution_options(populate_existing=True)
    ) if event.refund_reference else None
    if refund is None:
        return "ignored: no such refund"
    if refund.status is not PaymentStatus.PENDING:
        return f"ignored: refund already {refund.status.value}"
    refund.status = PaymentStatus.SUCCEEDED
    refund.updated_at = now
    invoice_status = await session.scalar(select(Invoice.status).where(Invoice.id == refund.invoice_id))
    emit_event(session, event_type="refund.created", organization_id=refund.organization_id,
               payload=refund_event_payload(refund, invoice_status), now=now)
    record_audit(session, actor=None, action="refund.succeeded", object_type="Refund", object_id=refund.id,
                 organization_id=refund.organization_id, now=now, after={"status": refund.status.value},
                 reason=f"{event.gateway} webhook {event.event_id}")
    return "refund SUCCEEDED"


async def _card_detached(session: AsyncSession, event: InboundEvent, now: datetime) -> str:
    """Stripe no longer holds the card for the customer: it cannot be charged, so it goes (a
    default goes too: the next charge asks for a method instead of failing at Stripe)."""
    method = await session.scalar(select(PaymentMethod).where(
        PaymentMethod.gateway == event.gateway,
        PaymentMethod.gateway_payment_method_id == event.payment_method_reference)) \
        if event.payment_method_reference else None
    if method is None:
        return "ignored: no such payment method"
    # As removePaymentMethod records it (audit row and outbox event ``payment_method.removed``).
    record_change(session, actor=None, action="payment_method.removed", object_type="PaymentMethod",
                  object_id=method.id, organization_id=method.organization_id, now=now,
                  before=snapshot(method, *_AUDIT_FIELDS), reason=f"{event.gateway} webhook {event.event_id}",
                  subject=method)
    await session.delete(method)
    return "payment method removed"


async def _disputed(session: AsyncSession, event: InboundEvent, now: datetime) -> str:
    """A dispute (chargeback) of a payment: marked on the payment, ``invoice.disputed`` sent once."""
    payment = await _event_payment(session, event)
    if payment is None:
        return "ignored: no such payment"
    if payment.disputed_at is not None:
        return "ignored: payment already disputed"
    payment.disputed_at = now
    payment.updated_at = now
    invoice = await session.scalar(select(Invoice).where(Invoice.id == payment.invoice_id))
    emit_event(session, event_type="invoice.disputed", organization_id=payment.organization_id,
               payload=invoice_event_payload(invoice, payment_id=payment.id, dispute_reason=event.failure_code),
               now=now)
    record_audit(session, actor=None, action="payment.disputed", object_type="Payment", object_id=payment.id,
                 organization_id=payment.organization_id, now=now, after={"disputed_at": now.isoformat()},
                 reason=f"{event.gateway} webhook {event.event_id}")
    return "payment disputed"
