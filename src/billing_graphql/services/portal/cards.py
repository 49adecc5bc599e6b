"""Cards in the billing portal, each processor through its own form: the sandbox's token through
the same service as ``addPaymentMethod`` (the processor checks the card first); Stripe's through
Elements and a SetupIntent the browser confirms, saved as ``setup_intent.succeeded`` saves it;
Razorpay's through Checkout, saved once Checkout's signature is verified. Made default as
``setDefaultPaymentMethod`` does, and, as
Stripe does when a customer replaces the card of an unpaid subscription, the open invoices are
retried at once with the new default card (each through ``payInvoice``'s service)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
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
from billing_graphql.services.payments.razorpay_methods import (
    CardAuthorisation,
    save_authorised_card,
    start_card_authorisation,
)
from billing_graphql.services.payments.stripe_methods import (
    add_payment_method,
    create_setup_intent,
    save_setup_intent_card,
)
from billing_graphql.settings import Settings


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


def card_processor(settings: Settings, default_gateway: str | None) -> str:
    """The processor a new card is added with: the default card's, else the one configured for
    cards (Stripe when its keys are set, else Razorpay when its key is set, else the sandbox)."""
    if default_gateway:
        return default_gateway
    if settings.stripe_secret_key:
        return "stripe"
    return "razorpay" if settings.razorpay_key_id else "sandbox"


async def _default_card(db: Database, actor: Actor) -> PaymentMethod | None:
    async with db.read() as session:
        return await session.scalar(select(PaymentMethod).where(PaymentMethod.organization_id == actor.organization_id,
                                                                PaymentMethod.is_default.is_(True)))


async def _saved(db: Database, gateways: GatewayRegistry, actor: Actor, new: PaymentMethod, old: PaymentMethod | None,
                 *, replace_default: bool, now: datetime) -> tuple[PaymentMethod, Retry]:
    """After a card is saved: with ``replace_default`` the card it replaces is removed; as the
    default, the open invoices are retried with it."""
    if replace_default and old is not None and old.id != new.id:
        await remove_payment_method(db, actor, payment_method_id=old.id, now=now)
    retry = await retry_open_invoices(db, gateways, actor, now=now) if new.is_default else Retry.NOTHING_OPEN
    return new, retry


async def add_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, token: str, label: str,
                   make_default: bool, replace_default: bool = False, now: datetime) -> tuple[PaymentMethod, Retry]:
    """Save a card from a processor's token (the sandbox's token form; checked by its processor
    first); as the default, the open invoices are retried with it, and with ``replace_default`` the
    card it replaces is removed."""
    old = await _default_card(db, actor)
    gateway = old.gateway if old is not None else "sandbox"
    new = await add_payment_method(db, gateways, actor, NewPaymentMethod(
        gateway=gateway, gateway_payment_method_id=token.strip(), type=PaymentMethodType.CREDIT_CARD,
        label=label.strip(), is_default=make_default or replace_default), now=now)
    return await _saved(db, gateways, actor, new, old, replace_default=replace_default, now=now)


async def add_stripe_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, setup_intent_id: str,
                          make_default: bool, now: datetime) -> tuple[PaymentMethod, Retry]:
    """Save the card of a SetupIntent confirmed with Stripe Elements (``save_setup_intent_card``)."""
    old = await _default_card(db, actor)
    new = await save_setup_intent_card(db, gateways, actor, setup_intent_id=setup_intent_id, is_default=make_default,
                                       now=now)
    return await _saved(db, gateways, actor, new, old, replace_default=False, now=now)


async def add_razorpay_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, order_id: str, payment_id: str,
                            signature: str, make_default: bool, now: datetime) -> tuple[PaymentMethod, Retry]:
    """Save the card Razorpay Checkout authorised, its signature verified (``save_authorised_card``)."""
    old = await _default_card(db, actor)
    new = await save_authorised_card(db, gateways, actor, order_id=order_id, payment_id=payment_id,
                                     signature=signature, is_default=make_default, now=now)
    return await _saved(db, gateways, actor, new, old, replace_default=False, now=now)


@dataclass(frozen=True, slots=True)
class CardForm:
    """What the cards page's form needs: the processor and, for Stripe, the SetupIntent's client
    secret and publishable key; for Razorpay, the authorisation order Checkout opens. ``problem``:
    the processor could not be reached (the page says so; nothing else fails)."""

    processor: str
    stripe_client_secret: str | None = None
    stripe_publishable_key: str | None = None
    razorpay: CardAuthorisation | None = None
    problem: bool = False


async def card_form(db: Database, gateways: GatewayRegistry, actor: Actor, processor: str) -> CardForm:
    """The processor's own card form, prepared: a SetupIntent for Stripe Elements (as Stripe's
    guide, made when the page is shown), an authorisation order for Razorpay Checkout."""
    try:
        if processor == "stripe":
            intent = await create_setup_intent(db, gateways, actor, gateway_name="stripe")
            return CardForm(processor, stripe_client_secret=intent.client_secret,
                            stripe_publishable_key=intent.publishable_key, problem=not intent.publishable_key)
        if processor == "razorpay":
            return CardForm(processor, razorpay=await start_card_authorisation(db, gateways, actor))
    except BillingError:
        return CardForm(processor, problem=True)
    return CardForm(processor)


async def make_default(db: Database, gateways: GatewayRegistry, actor: Actor, *, payment_method_id: uuid.UUID,
                       now: datetime) -> Retry:
    await set_default_payment_method(db, actor, payment_method_id=payment_method_id, now=now)
    return await retry_open_invoices(db, gateways, actor, now=now)
