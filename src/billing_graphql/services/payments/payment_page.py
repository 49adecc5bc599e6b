"""What ``GET /invoices/{id}/pay`` shows: the invoice's Stripe PaymentIntent that waits for the
customer's confirmation (3-D Secure), with its client secret for Stripe.js.

An invoice has one when it is OPEN and its latest attempt FAILED for want of authentication
(``authentication_required``) at Stripe. The client secret is asked of Stripe each time (never
stored). Another organization's invoice is NOT_FOUND, as a missing one (the PDF's rule)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Payment, PaymentStatus
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.domain.money import Money
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.base import GatewayError
from billing_graphql.services.payments.gateway_webhooks import AUTHENTICATION_REQUIRED
from billing_graphql.services.payments.stripe_methods import stripe_gateway


@dataclass(frozen=True, slots=True)
class PaymentPage:
    invoice_id: uuid.UUID
    invoice_number: str | None
    amount: str  # formatted
    payment_intent_id: str
    client_secret: str
    publishable_key: str


async def load_payment_page(db: Database, gateways: GatewayRegistry, *, invoice_id: uuid.UUID,
                            organization_id: uuid.UUID | None) -> PaymentPage:
    async with db.read() as session:
        statement = select(Invoice).where(Invoice.id == invoice_id)
        if organization_id is not None:
            statement = statement.where(Invoice.organization_id == organization_id)
        invoice = await session.scalar(statement)
        if invoice is None:
            raise not_found("Invoice")
        payment = await session.scalar(
            select(Payment).where(Payment.invoice_id == invoice.id)
            .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(1))
    if (invoice.status is not InvoiceStatus.OPEN or payment is None or payment.gateway != "stripe"
            or payment.status is not PaymentStatus.FAILED or payment.failure_code != AUTHENTICATION_REQUIRED
            or not payment.gateway_payment_id):
        raise BillingError(BillingErrorCode.NOT_FOUND, "No payment of this invoice waits for confirmation.")
    gateway = stripe_gateway(gateways)
    if not gateway.publishable_key:
        raise BillingError(BillingErrorCode.NOT_FOUND, "Stripe's publishable key is not configured.")
    try:
        intent = await gateway.retrieve_payment_intent(payment.gateway_payment_id)
    except GatewayError as exc:
        raise BillingError(BillingErrorCode.PAYMENT_FAILED, f"Stripe could not be reached: {exc}") from None
    if intent is None or not intent.get("client_secret") or intent.get("status") not in (
            "requires_action", "requires_confirmation", "requires_payment_method"):
        raise BillingError(BillingErrorCode.NOT_FOUND, "No payment of this invoice waits for confirmation.")
    return PaymentPage(invoice_id=invoice.id, invoice_number=invoice.number,
                       amount=Money(payment.amount, payment.currency).format(),
                       payment_intent_id=payment.gateway_payment_id, client_secret=str(intent["client_secret"]),
                       publishable_key=gateway.publishable_key)
