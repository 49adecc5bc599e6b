"""startCheckout / confirmCheckout: paying the first invoice in the gateway's checkout widget."""

from __future__ import annotations

import strawberry

from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.permissions import MANAGERS, allow
from billing_graphql.graphql.scope import ORGANIZATION_ID_HELP, organization_for
from billing_graphql.graphql.common import Money, attempt, decode_id
from billing_graphql.graphql.billing.types import InvoiceType, PaymentType
from billing_graphql.graphql.subscriptions.types import BillingPeriod, SubscriptionType
from billing_graphql.services.payments import checkout
from billing_graphql.services.subscriptions.choice import PlanChoice


@strawberry.input
class StartCheckoutInput:
    plan_id: strawberry.ID | None = strawberry.field(default=None, description="Default: the cheapest active plan.")
    billing_period: BillingPeriod = BillingPeriod.MONTHLY
    coupon_code: str | None = None
    gateway: str | None = strawberry.field(
        default=None, description='"razorpay" or "sandbox"; default: razorpay when it is configured, else sandbox.'
    )
    organization_id: strawberry.ID | None = strawberry.field(default=None, description=ORGANIZATION_ID_HELP)


@strawberry.type
class StartCheckoutPayload:
    gateway: str | None = None
    order_id: str | None = strawberry.field(default=None, description="The gateway's order for the client SDK.")
    key_id: str | None = strawberry.field(default=None, description="The gateway's public key id for the client SDK.")
    client_secret: str | None = strawberry.field(
        default=None, description="Stripe: the PaymentIntent's client secret for Stripe.js (confirmCardPayment); "
                                  "its payment_intent.succeeded event completes the checkout.")
    amount: Money | None = strawberry.field(default=None, description="What the order collects: the amount due.")
    currency: str | None = None
    invoice: InvoiceType | None = strawberry.field(default=None, description="The first invoice, OPEN until paid.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class ConfirmCheckoutInput:
    order_id: str = strawberry.field(description="razorpay_order_id")
    payment_id: str = strawberry.field(description="razorpay_payment_id")
    signature: str = strawberry.field(description="razorpay_signature: HMAC-SHA256(order_id|payment_id).")
    idempotency_key: str | None = None


@strawberry.type
class ConfirmCheckoutPayload:
    subscription: SubscriptionType | None = None
    invoice: InvoiceType | None = None
    payment: PaymentType | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Open a checkout: the first invoice and a gateway order for the client SDK to pay.",
    )
    async def start_checkout(self, info: Info, input: StartCheckoutInput) -> StartCheckoutPayload | None:
        context = info.context
        started, errors = await attempt(lambda: checkout.start_checkout(
            context.db, context.actor,
            organization_id=organization_for(info, input.organization_id),
            choice=PlanChoice(decode_id(input.plan_id, "Plan", "planId") if input.plan_id is not None else None,
                              input.billing_period, input.coupon_code),
            gateway=input.gateway,
            gateways=context.gateways,
            now=context.now,
        ))
        if started is None:
            return StartCheckoutPayload(errors=errors)
        return StartCheckoutPayload(
            gateway=started.gateway, order_id=started.order_id, key_id=started.key_id,
            client_secret=started.order.client_secret, amount=Money.of(started.amount, started.currency), currency=started.currency,
            invoice=InvoiceType.from_row(started.invoice),
        )

    @strawberry.mutation(
        extensions=allow(*MANAGERS),
        description="Confirm a paid checkout order: verifies the signature, marks the invoice paid and starts the "
                    "subscription ACTIVE (no trial). Confirming the same order again returns the same result.",
    )
    async def confirm_checkout(self, info: Info, input: ConfirmCheckoutInput) -> ConfirmCheckoutPayload | None:
        context = info.context
        actor = context.actor
        result, errors = await attempt(checkout.confirm_checkout(
            context.db, actor,
            organization_scope=None if actor.is_super_admin else actor.organization_id,
            order_id=input.order_id, payment_id=input.payment_id, signature=input.signature,
            idempotency_key=input.idempotency_key, gateways=context.gateways, now=context.now,
        ))
        if result is None:
            return ConfirmCheckoutPayload(errors=errors)
        return ConfirmCheckoutPayload(
            subscription=SubscriptionType.from_row(result.subscription),
            invoice=InvoiceType.from_row(result.invoice),
            payment=PaymentType.from_row(result.payment),
        )
