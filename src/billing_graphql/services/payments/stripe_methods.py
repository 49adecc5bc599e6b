"""Stripe's side of payment methods: the organization's Stripe Customer, SetupIntents for
Stripe.js, and cards saved from Stripe's own PaymentMethods (brand, last 4 and expiry as Stripe
tells them; the number never reaches us).

- ``stripe_customer``: one Stripe Customer per organization, created on first need (Stripe's
  ``Idempotency-Key`` is derived from the organization, so two racing first needs make one), its
  id kept in ``Organization.gateway_customer_id``.
- ``create_setup_intent``: a SetupIntent for that customer; the SPA confirms it with Stripe.js
  and Stripe reports ``setup_intent.succeeded`` (``save_stripe_card``).
- ``add_payment_method``: ``addPaymentMethod`` for every gateway; for Stripe the PaymentMethod is
  attached to the customer first and its card details replace what the caller sent (VALIDATION
  when Stripe does not know it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import CheckoutSession, Invoice, Organization, PaymentMethod, PaymentMethodType
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.roles import Role
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.base import GatewayError
from billing_graphql.gateways.stripe import CardDetails, StripeGateway
from billing_graphql.services.payments import payment_methods
from billing_graphql.services.payments.gateway_webhooks import (
    CAPTURED,
    CARD_SAVED,
    Applied,
    InboundEvent,
    already_recorded,
    apply_gateway_event,
)
from billing_graphql.services.payments.payment_methods import NewPaymentMethod

NOT_CONFIGURED = "Stripe is not configured."
UNKNOWN_METHOD = "Stripe does not know this payment method."


def stripe_gateway(gateways: GatewayRegistry) -> StripeGateway:
    """The configured Stripe gateway; VALIDATION "Stripe is not configured." otherwise."""
    try:
        gateway = gateways.get("stripe")
    except (GatewayError, LookupError, ValueError):
        raise validation(NOT_CONFIGURED, "gateway") from None
    if not isinstance(gateway, StripeGateway) and not hasattr(gateway, "attach_payment_method"):
        raise validation(NOT_CONFIGURED, "gateway")
    return gateway  # type: ignore[return-value]


def is_stripe_customer(customer_id: str | None) -> bool:
    return bool(customer_id) and customer_id.startswith("cus_") and not customer_id.startswith("cus_sandbox_")


async def stripe_customer(db: Database, gateway: StripeGateway, organization_id: uuid.UUID) -> str:
    """The organization's Stripe Customer id, created on first need."""
    async with db.read() as session:
        organization = await session.get(Organization, organization_id)
        if organization is None:
            raise not_found("Organization", None)
        if is_stripe_customer(organization.gateway_customer_id):
            return organization.gateway_customer_id
        name, email = organization.name, organization.billing_email
    try:
        customer_id = await gateway.create_customer(organization_id=str(organization_id), name=name, email=email)
    except GatewayError as exc:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED, f"Stripe could not create the customer: {exc}",
                           field="gateway") from None
    async with db.write() as session:
        await lock_organization(session, organization_id)
        organization = await session.get(Organization, organization_id, populate_existing=True)
        if is_stripe_customer(organization.gateway_customer_id):
            return organization.gateway_customer_id
        organization.gateway_customer_id = customer_id
    await _send_billing_details(db, gateway, customer_id, organization_id, name)
    return customer_id


async def _send_billing_details(db: Database, gateway: StripeGateway, customer_id: str,
                                organization_id: uuid.UUID, name: str) -> None:
    """A new Customer starts with the billing details set before it existed (after the commit)."""
    from billing_graphql.services.platform.billing_details import get_billing_details, push_to_stripe

    details = await get_billing_details(db, organization_id)
    if not details.is_empty:
        await push_to_stripe(gateway, customer_id, details, organization_id=organization_id, organization_name=name)


@dataclass(frozen=True, slots=True)
class SetupIntentResult:
    client_secret: str
    publishable_key: str | None
    customer_id: str


async def create_setup_intent(db: Database, gateways: GatewayRegistry, actor: Actor, *,
                              gateway_name: str) -> SetupIntentResult:
    """A SetupIntent for the actor's organization's Stripe Customer (made on first need)."""
    if gateway_name.strip().lower() != "stripe":
        raise validation("Only stripe has SetupIntents.", "gateway")
    if actor.organization_id is None:
        raise not_found("Organization", None)
    gateway = stripe_gateway(gateways)
    customer_id = await stripe_customer(db, gateway, actor.organization_id)
    try:
        intent = await gateway.create_setup_intent(customer_id=customer_id)
    except GatewayError as exc:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED, f"Stripe could not start saving a card: {exc}",
                           field="gateway") from None
    return SetupIntentResult(client_secret=intent.client_secret, publishable_key=gateway.publishable_key,
                             customer_id=customer_id)


def _card_input(details: CardDetails, *, label: str = "", is_default: bool = False) -> NewPaymentMethod:
    brand = details.brand or details.type
    return NewPaymentMethod(
        gateway="stripe", gateway_payment_method_id=details.payment_method_id, type=PaymentMethodType.CREDIT_CARD,
        label=label or (f"{brand.title()} ending {details.last4}" if details.last4 else brand.title()),
        is_default=is_default, brand=details.brand, last4=details.last4,
        exp_month=details.exp_month if details.exp_year else None,
        exp_year=details.exp_year if details.exp_month else None,
    )


async def add_payment_method(db: Database, gateways: GatewayRegistry, actor: Actor, data: NewPaymentMethod, *,
                             now: datetime):
    """``addPaymentMethod``: for Stripe, attach the PaymentMethod and keep Stripe's card details."""
    if data.gateway.strip().lower() == "stripe":
        data = replace(data, gateway="stripe")
        payment_methods.clean_new_payment_method(data, now)  # the token's shape, before calling Stripe
        if actor.organization_id is None:
            raise not_found("Organization", None)
        gateway = stripe_gateway(gateways)
        customer_id = await stripe_customer(db, gateway, actor.organization_id)
        token = data.gateway_payment_method_id.strip()
        try:
            details = await gateway.attach_payment_method(token, customer_id)
        except GatewayError as exc:
            raise validation(f"Stripe refused this payment method: {exc}", "gatewayPaymentMethodId") from None
        if details is None:
            raise validation(UNKNOWN_METHOD, "gatewayPaymentMethodId")
        data = _card_input(details, label=data.label, is_default=data.is_default)
    else:
        data = await _verified(gateways, payment_methods.clean_new_payment_method(data, now))
    return await payment_methods.add_payment_method(db, actor, data, now=now)


CARD_REFUSED = "Your card was not accepted"


async def _verified(gateways: GatewayRegistry, data: NewPaymentMethod) -> NewPaymentMethod:
    """A card checked by its processor before it is saved, where the processor offers a check
    (the sandbox's ``verify_payment_method``, a zero-amount check like a SetupIntent): a declined
    one is PAYMENT_FAILED on ``gatewayPaymentMethodId`` with the processor's reason (and its code as
    the error's ``decline_code`` detail), nothing saved; an accepted one gets the brand, last 4 and expiry the processor knows."""
    try:
        gateway = gateways.get(data.gateway)
    except (GatewayError, LookupError, ValueError):
        return data
    verify = getattr(gateway, "verify_payment_method", None)
    if verify is None or data.type is not PaymentMethodType.CREDIT_CARD:
        return data
    check = await verify(token=data.gateway_payment_method_id)
    if check.declined:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                           f"{CARD_REFUSED}: {check.failure_message or 'it was declined.'} "
                           "Nothing was saved; use another card.", field="gatewayPaymentMethodId",
                           decline_code=check.failure_code)
    return replace(data, brand=data.brand or check.brand, last4=data.last4 or check.last4,
                   exp_month=data.exp_month or (check.exp_month if not data.exp_year else None),
                   exp_year=data.exp_year or (check.exp_year if not data.exp_month else None))


async def _save_card(db: Database, gateway: StripeGateway, organization_id: uuid.UUID, *, payment_method_id: str,
                     reason: str, is_default: bool, now: datetime) -> PaymentMethod:
    """The card Stripe confirmed, with the details Stripe gives, saved for the organization (default
    when it is the first or ``is_default``); ALREADY_EXISTS when it is saved already."""
    details = await gateway.retrieve_payment_method(payment_method_id)
    if details is None:
        raise validation(UNKNOWN_METHOD, "gatewayPaymentMethodId")
    actor = Actor(role=Role.ADMIN, organization_id=organization_id, subject=reason[:200])
    return await payment_methods.add_payment_method(db, actor, _card_input(details, is_default=is_default), now=now)


async def save_stripe_card(db: Database, gateway: StripeGateway, *, customer_id: str, payment_method_id: str,
                           reason: str, now: datetime) -> str:
    """A card Stripe confirmed (``setup_intent.succeeded``, a checkout's PaymentIntent) saved for the
    customer's organization, default when it is the first; saved once however often Stripe says so."""
    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.gateway_customer_id == customer_id))
    if organization_id is None:
        return "ignored: no organization has this Stripe customer"
    try:
        await _save_card(db, gateway, organization_id, payment_method_id=payment_method_id, reason=reason,
                         is_default=False, now=now)
    except BillingError as exc:
        if exc.code is BillingErrorCode.ALREADY_EXISTS:
            return "payment method already saved"
        if exc.message == UNKNOWN_METHOD:
            return "ignored: Stripe does not know the payment method"
        return f"ignored: {exc.message}"[:200]
    return "payment method saved"


async def save_setup_intent_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, setup_intent_id: str,
                                 is_default: bool, now: datetime) -> PaymentMethod:
    """The card of a SetupIntent the customer confirmed in the browser with Stripe.js
    (``stripe.confirmCardSetup``), saved as ``setup_intent.succeeded`` saves it (``save_stripe_card``).

    Stripe is asked for the SetupIntent itself: it must belong to the organization's Stripe Customer
    (NOT_FOUND otherwise, as another organization's object) and have succeeded, which means Stripe
    checked the card with its bank; anything else is PAYMENT_FAILED (``card_declined``) and nothing is
    saved. When the webhook saved the card first, that card is the one returned (made default when asked)."""
    if actor.organization_id is None:
        raise not_found("Organization", None)
    gateway = stripe_gateway(gateways)
    customer_id = await stripe_customer(db, gateway, actor.organization_id)
    try:
        intent = await gateway.retrieve_setup_intent(setup_intent_id.strip())
    except GatewayError as exc:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED, f"Stripe could not be reached: {exc}",
                           field="gateway") from None
    if intent is None or intent.customer != customer_id:
        raise not_found("SetupIntent", "setupIntent")
    if intent.status != "succeeded" or not intent.payment_method:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                           f"{CARD_REFUSED}: Stripe has not confirmed it ({intent.status}). Nothing was saved; "
                           "use another card.", field="gatewayPaymentMethodId", decline_code="card_declined")
    try:
        return await _save_card(db, gateway, actor.organization_id, payment_method_id=intent.payment_method,
                                reason=f"{actor.subject or 'portal'}: setup intent {intent.id}", is_default=is_default,
                                now=now)
    except BillingError as exc:
        if exc.code is not BillingErrorCode.ALREADY_EXISTS:
            raise
    async with db.read() as session:
        saved = await session.scalar(select(PaymentMethod).where(
            PaymentMethod.organization_id == actor.organization_id, PaymentMethod.gateway == "stripe",
            PaymentMethod.gateway_payment_method_id == intent.payment_method))
    if saved is None:
        raise BillingError(BillingErrorCode.ALREADY_EXISTS, "This card is already saved.")
    if is_default and not saved.is_default:
        return await payment_methods.set_default_payment_method(db, actor, payment_method_id=saved.id, now=now)
    return saved


async def apply_stripe_event(db: Database, gateways: GatewayRegistry, event: InboundEvent, now: datetime) -> Applied:
    """A verified Stripe event applied once; ``setup_intent.succeeded`` first asks Stripe for the
    card's details and saves it (saved once: a second save is ALREADY_EXISTS), then records the
    event. A GatewayError (Stripe unreachable) records nothing, so Stripe's redelivery retries."""
    if event.action == CARD_SAVED:
        if await already_recorded(db, event):
            return Applied(True, "duplicate")
        if not event.customer_reference or not event.payment_method_reference:
            result = "ignored: the SetupIntent names no customer or payment method"
        else:
            try:
                gateway = stripe_gateway(gateways)
            except BillingError:
                gateway = None
            result = NOT_CONFIGURED if gateway is None else await save_stripe_card(
                db, gateway, customer_id=event.customer_reference, payment_method_id=event.payment_method_reference,
                reason=f"stripe webhook {event.event_id}", now=now)
        event = replace(event, applied=result)
    elif event.action == CAPTURED and event.payment_reference and await _is_checkout(db, event.payment_reference):
        if await already_recorded(db, event):
            return Applied(True, "duplicate")
        event = replace(event, applied=await _complete_checkout(db, gateways, event.payment_reference, now))
    return await apply_gateway_event(db, event, now)


async def _is_checkout(db: Database, payment_intent_id: str) -> bool:
    async with db.read() as session:
        return await session.scalar(
            select(CheckoutSession.id).join(Invoice, Invoice.id == CheckoutSession.invoice_id)
            .where(Invoice.gateway_order_id == payment_intent_id, CheckoutSession.gateway == "stripe").limit(1)
        ) is not None


async def _complete_checkout(db: Database, gateways: GatewayRegistry, payment_intent_id: str, now: datetime) -> str:
    """A checkout's PaymentIntent succeeded: the checkout completes as ``confirmCheckout`` would
    (the verified event stands for the client's signature), its card saved for renewals."""
    from billing_graphql.services.payments.checkout import confirm_checkout

    try:
        await confirm_checkout(db, None, organization_scope=None, order_id=payment_intent_id,
                               payment_id=payment_intent_id, signature="", idempotency_key=None, gateways=gateways,
                               now=now, verified_event=True)
    except BillingError as exc:
        return f"ignored: {exc.message}"[:200]
    return "checkout completed"
