"""Cards in the billing portal: saved through the same service as ``addPaymentMethod`` (the
processor checks the card first), made default as ``setDefaultPaymentMethod`` does, and, as
Stripe does when a customer replaces the card of an unpaid subscription, the open invoices are
retried at once with the new default card (each through ``payInvoice``'s service)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, PaymentMethod, PaymentMethodType
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.invoice_payments import pay_invoice
from billing_graphql.services.payments.payment_methods import (
    NewPaymentMethod,
    remove_payment_method,
    set_default_payment_method,
)
from billing_graphql.services.payments.stripe_methods import add_payment_method


class Retry(enum.Enum):
    NOTHING_OPEN = "nothing-open"
    PAID = "paid"
    FAILED = "failed"


async def retry_open_invoices(db: Database, gateways: GatewayRegistry, actor: Actor, *, now: datetime) -> Retry:
    """Pay the organization's OPEN invoices, oldest first, with the default card."""
    async with db.read() as session:
        open_ids = list((await session.scalars(
            select(Invoice.id).where(Invoice.organization_id == actor.organization_id,
                                     Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.created_at, Invoice.id))).all())
    if not open_ids:
        return Retry.NOTHING_OPEN
    for invoice_id in open_ids:
        try:
            result = await pay_invoice(db, actor, invoice_id=invoice_id, organization_scope=actor.organization_id,
                                       payment_method_id=None, idempotency_key=None, gateways=gateways, now=now)
        except BillingError:
            return Retry.FAILED
        if result.invoice.status is not InvoiceStatus.PAID:
            return Retry.FAILED
    return Retry.PAID


async def add_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, token: str, label: str,
                   make_default: bool, replace_default: bool = False, now: datetime) -> tuple[PaymentMethod, Retry]:
    """Save a card (checked by its processor first); as the default, the open invoices are retried
    with it, and with ``replace_default`` the card it replaces is removed."""
    async with db.read() as session:
        old = await session.scalar(select(PaymentMethod).where(PaymentMethod.organization_id == actor.organization_id,
                                                               PaymentMethod.is_default.is_(True)))
    gateway = old.gateway if old is not None else "sandbox"
    new = await add_payment_method(db, gateways, actor, NewPaymentMethod(
        gateway=gateway, gateway_payment_method_id=token.strip(), type=PaymentMethodType.CREDIT_CARD,
        label=label.strip(), is_default=make_default or replace_default), now=now)
    if replace_default and old is not None and old.id != new.id:
        await remove_payment_method(db, actor, payment_method_id=old.id, now=now)
    retry = await retry_open_invoices(db, gateways, actor, now=now) if new.is_default else Retry.NOTHING_OPEN
    return new, retry


async def make_default(db: Database, gateways: GatewayRegistry, actor: Actor, *, payment_method_id: uuid.UUID,
                       now: datetime) -> Retry:
    await set_default_payment_method(db, actor, payment_method_id=payment_method_id, now=now)
    return await retry_open_invoices(db, gateways, actor, now=now)
