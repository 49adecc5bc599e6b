"""Razorpay's side of saving a card: the organization's Razorpay customer, an authorisation order
for Razorpay Checkout (``checkout.js``) that asks Razorpay to tokenise the card (``token:
{frequency: as_presented}``, as Razorpay's recurring card payments document), and the card saved
from what Checkout returns once its signature is verified.

- ``start_card_authorisation``: the order Checkout opens, for the smallest whole amount of the
  organization's currency (Razorpay's authorisation transaction is a payment of at least one unit).
- ``save_authorised_card``: Checkout's ``razorpay_signature`` must be the hex HMAC-SHA256 of
  ``order_id + "|" + payment_id`` under the key secret (checked in constant time, as for a
  checkout); then Razorpay is asked for the payment (``saved_method``): its token, network and last
  4 are saved as a card. A wrong signature or a payment Razorpay kept no token for saves nothing.
  The authorisation payment is then refunded in full (``refund_authorisation``): saving a card costs
  the customer nothing, as with Stripe's SetupIntent.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import Organization, PaymentMethod, PaymentMethodType
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.domain.money import exponent
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.base import GatewayError
from billing_graphql.services.payments import payment_methods
from billing_graphql.services.payments.payment_methods import NewPaymentMethod

RAZORPAY_CUSTOMER_PREFIX = "cust_"
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CardAuthorisation:
    """What Razorpay Checkout is opened with."""

    key_id: str
    order_id: str
    amount: int  # our minor units
    currency: str
    customer_id: str
    name: str
    email: str | None


def _unavailable(exc: Exception) -> BillingError:
    return BillingError(BillingErrorCode.PAYMENT_FAILED, f"Razorpay could not be reached: {exc}", field="gateway")


async def razorpay_customer(db: Database, gateways: GatewayRegistry, organization_id: uuid.UUID) -> str:
    """The organization's Razorpay customer id, created on first need (kept on the organization)."""
    gateway = gateways.require("razorpay", "gateway")
    async with db.read() as session:
        organization = await session.get(Organization, organization_id)
        if organization is None:
            raise not_found("Organization", None)
        if (organization.gateway_customer_id or "").startswith(RAZORPAY_CUSTOMER_PREFIX):
            return organization.gateway_customer_id
        name, email = organization.name, organization.billing_email
    try:
        customer_id = await gateway.create_customer(organization_id=str(organization_id), name=name, email=email)
    except GatewayError as exc:
        raise _unavailable(exc) from None
    async with db.write() as session:
        await lock_organization(session, organization_id)
        organization = await session.get(Organization, organization_id, populate_existing=True)
        if (organization.gateway_customer_id or "").startswith(RAZORPAY_CUSTOMER_PREFIX):
            return organization.gateway_customer_id
        organization.gateway_customer_id = customer_id
    return customer_id


async def start_card_authorisation(db: Database, gateways: GatewayRegistry, actor: Actor) -> CardAuthorisation:
    if actor.organization_id is None:
        raise not_found("Organization", None)
    gateway = gateways.require("razorpay", "gateway")
    customer_id = await razorpay_customer(db, gateways, actor.organization_id)
    async with db.read() as session:
        organization = await session.get(Organization, actor.organization_id)
    currency = organization.currency
    amount = _authorisation_amount(currency)
    key = f"card_{uuid.uuid4().hex}"
    try:
        order = await gateway.create_order(amount=amount, currency=currency, receipt=key, idempotency_key=key,
                                           customer_id=customer_id, save_method=True)
    except GatewayError as exc:
        raise _unavailable(exc) from None
    return CardAuthorisation(key_id=order.key_id or "", order_id=order.order_id, amount=amount, currency=currency,
                             customer_id=customer_id, name=organization.name, email=organization.billing_email)


def _authorisation_amount(currency: str) -> int:
    """One whole unit of ``currency`` in minor units: Razorpay's authorisation payment."""
    return 10 ** exponent(currency)


SIGNATURE_REFUSED = ("Razorpay's confirmation of this card could not be verified. Nothing was saved; "
                     "add the card again.")


async def save_authorised_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, order_id: str,
                               payment_id: str, signature: str, is_default: bool, now: datetime) -> PaymentMethod:
    """The card Razorpay Checkout authorised, saved once its signature is verified (INVALID_SIGNATURE
    otherwise) and Razorpay says which token it kept (PAYMENT_FAILED when none)."""
    gateway = gateways.require("razorpay", "gateway")
    order_id, payment_id = order_id.strip(), payment_id.strip()
    if not gateway.verify_payment_signature(order_id=order_id, payment_id=payment_id, signature=signature.strip()):
        raise BillingError(BillingErrorCode.INVALID_SIGNATURE, SIGNATURE_REFUSED, field="signature")
    try:
        saved = await gateway.saved_method(order_id=order_id, payment_id=payment_id)
    except GatewayError as exc:
        raise _unavailable(exc) from None
    if saved is None:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                           "Your card was not accepted: Razorpay kept no token for it. Nothing was saved; use another "
                           "card.", field="gatewayPaymentMethodId", decline_code="card_declined")
    method = await payment_methods.add_payment_method(db, actor, NewPaymentMethod(
        gateway="razorpay", gateway_payment_method_id=saved.token, type=PaymentMethodType(saved.type),
        label=saved.label, is_default=is_default, brand=saved.brand, last4=saved.last4), now=now)
    await refund_authorisation(db, gateways, method.organization_id, payment_id=payment_id)
    return method


async def refund_authorisation(db: Database, gateways: GatewayRegistry, organization_id: uuid.UUID, *,
                               payment_id: str) -> bool:
    """The card's authorisation payment refunded in full, once (its idempotency key is the payment's).
    The card stays saved when Razorpay refuses or cannot be reached: logged, and False."""
    gateway = gateways.require("razorpay", "gateway")
    async with db.read() as session:
        currency = (await session.get(Organization, organization_id)).currency
    try:
        result = await gateway.refund(gateway_payment_id=payment_id, amount=_authorisation_amount(currency),
                                      currency=currency, idempotency_key=f"card-authorisation-{payment_id}")
    except GatewayError as exc:
        logger.warning("authorisation payment %s of organization %s not refunded: %s", payment_id,
                       organization_id, exc)
        return False
    if not result.succeeded:
        logger.warning("authorisation payment %s of organization %s not refunded: %s", payment_id,
                       organization_id, result.failure_message)
    return result.succeeded
