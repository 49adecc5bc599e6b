"""payInvoice: pay an OPEN invoice now (owners and admins of its organization; super-admins)."""

from __future__ import annotations

import strawberry

from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.permissions import MANAGERS, allow
from billing_graphql.graphql.common import attempt, decode_id
from billing_graphql.graphql.billing.types import InvoiceType, PaymentType
from billing_graphql.graphql.subscriptions.types import SubscriptionType
from billing_graphql.services.billing import invoice_payments


@strawberry.input
class PayInvoiceInput:
    invoice_id: strawberry.ID
    payment_method_id: strawberry.ID | None = strawberry.field(
        default=None, description="Default: the organization's default payment method."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and input returns the first result (a decline included).",
    )


@strawberry.type
class PayInvoicePayload:
    invoice: InvoiceType | None = None
    payment: PaymentType | None = strawberry.field(default=None, description="The charge (null when nothing was due).")
    subscription: SubscriptionType | None = strawberry.field(
        default=None, description="The invoice's subscription, back to ACTIVE when this paid its last open invoice."
    )
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Pay an OPEN invoice with the given or the default payment method. A decline is PAYMENT_FAILED "
                    "with the invoice still OPEN.",
    )
    async def pay_invoice(self, info: Info, input: PayInvoiceInput) -> PayInvoicePayload | None:
        context = info.context
        actor = context.actor
        result, errors = await attempt(lambda: invoice_payments.pay_invoice(
            context.db, actor,
            invoice_id=decode_id(input.invoice_id, "Invoice", "invoiceId"),
            organization_scope=None if actor.is_super_admin else actor.organization_id,
            payment_method_id=(decode_id(input.payment_method_id, "PaymentMethod", "paymentMethodId")
                               if input.payment_method_id is not None else None),
            idempotency_key=input.idempotency_key,
            gateways=context.gateways,
            now=context.now,
        ))
        if result is None:
            return PayInvoicePayload(errors=errors)
        return PayInvoicePayload(
            invoice=InvoiceType.from_row(result.invoice),
            payment=PaymentType.from_row(result.payment) if result.payment else None,
            subscription=SubscriptionType.maybe(result.subscription),
            errors=errors,
        )
