"""Root fields for payment methods: list, add, make default, remove (owners and admins)."""

from __future__ import annotations

from typing import Any

import strawberry

from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.services.pagination import read_rows

from billing_graphql.domain.roles import TENANT_MANAGERS
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.ids import decode_global_id
from billing_graphql.graphql.inputs import spec_from_input
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.payments.types import PaymentMethodKind, PaymentMethodNode
from billing_graphql.graphql.common import attempt
from billing_graphql.graphql.errors import BillingError
from billing_graphql.services.payments import payment_methods, stripe_methods


@strawberry.input
class AddPaymentMethodInput:
    gateway: str = strawberry.field(default="sandbox", description="sandbox, razorpay or stripe.")
    gateway_payment_method_id: str = strawberry.field(
        description="The token the processor returned (Stripe: a PaymentMethod id, pm_...; its brand, last 4 and "
                    "expiry are read from Stripe). Never a card number (refused)."
    )
    type: PaymentMethodKind
    label: str = ""
    is_default: bool = strawberry.field(
        default=False, description="Make it the default (the first method always is)."
    )
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


AddPaymentMethodPayload = node_payload("AddPaymentMethodPayload", "payment_method", PaymentMethodNode)


@strawberry.input
class SetDefaultPaymentMethodInput:
    id: strawberry.ID


SetDefaultPaymentMethodPayload = node_payload("SetDefaultPaymentMethodPayload", "payment_method", PaymentMethodNode)


@strawberry.input
class RemovePaymentMethodInput:
    id: strawberry.ID


@strawberry.input
class CreateSetupIntentInput:
    gateway: str = strawberry.field(default="stripe", description="stripe (the only processor with SetupIntents).")


@strawberry.type
class CreateSetupIntentPayload:
    client_secret: str | None = strawberry.field(
        default=None, description="The SetupIntent's client secret for Stripe.js (confirmCardSetup / Elements).")
    publishable_key: str | None = strawberry.field(default=None, description="Stripe's publishable key for Stripe.js.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


RemovePaymentMethodPayload = node_payload("RemovePaymentMethodPayload", "removed_payment_method_id", strawberry.ID)


def payment_methods_query(context: Any) -> RootQuery:
    """The rows ``paymentMethods`` lists (the SQL tier wraps the same statement in JSON)."""
    return RootQuery(Statement(payment_methods.payment_methods_statement,
                               (payment_methods.organization_of(context.actor),)))


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow(*TENANT_MANAGERS),
        description="Your organization's payment methods, the default first.",
    )
    async def payment_methods(self, info: Info) -> list[PaymentMethodNode] | None:
        query = payment_methods_query(info.context)
        return [PaymentMethodNode.from_row(row) for row in await read_rows(info.context.db, query.statement)]


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(*TENANT_MANAGERS))
    async def add_payment_method(self, info: Info, input: AddPaymentMethodInput) -> AddPaymentMethodPayload | None:
        context = info.context
        data = spec_from_input(payment_methods.NewPaymentMethod, input)
        return await AddPaymentMethodPayload.of(
            stripe_methods.add_payment_method(context.db, context.gateways, context.actor, data, now=context.now)
        )

    @strawberry.mutation(
        extensions=allow(*TENANT_MANAGERS),
        description="Start saving a card with Stripe.js: a SetupIntent for your organization's Stripe customer. "
                    "Once Stripe confirms it, the card is saved (default when it is the first).",
    )
    async def create_setup_intent(self, info: Info, input: CreateSetupIntentInput) -> CreateSetupIntentPayload | None:
        context = info.context

        result, errors = await attempt(stripe_methods.create_setup_intent(
            context.db, context.gateways, context.actor, gateway_name=input.gateway))
        if errors:
            return CreateSetupIntentPayload(errors=errors)
        return CreateSetupIntentPayload(client_secret=result.client_secret, publishable_key=result.publishable_key)

    @strawberry.mutation(extensions=allow(*TENANT_MANAGERS))
    async def set_default_payment_method(
        self, info: Info, input: SetDefaultPaymentMethodInput
    ) -> SetDefaultPaymentMethodPayload | None:
        context = info.context

        async def run():
            method_id = decode_global_id(input.id, "PaymentMethod", what="Payment method")
            return await payment_methods.set_default_payment_method(
                context.db, context.actor, payment_method_id=method_id, now=context.now
            )

        return await SetDefaultPaymentMethodPayload.of(run())

    @strawberry.mutation(extensions=allow(*TENANT_MANAGERS))
    async def remove_payment_method(self, info: Info, input: RemovePaymentMethodInput) -> RemovePaymentMethodPayload | None:
        context = info.context

        async def run():
            method_id = decode_global_id(input.id, "PaymentMethod", what="Payment method")
            return await payment_methods.remove_payment_method(
                context.db, context.actor, payment_method_id=method_id, now=context.now
            )

        return await RemovePaymentMethodPayload.of(run(), lambda _removed: strawberry.ID(input.id))
