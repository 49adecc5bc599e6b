"""The refund mutation (super-admins)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from billing_graphql.domain.errors import BillingErrorCode as DomainBillingErrorCode
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.billing.types import InvoiceStatus, RefundStatus
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.common import Money, attempt
from billing_graphql.graphql.ids import decode_global_id
from billing_graphql.services.payments import refunds



@strawberry.input
class RefundInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice's global ID.")
    amount: Decimal | None = strawberry.field(
        default=None, description="In major units of the invoice's currency; omitted refunds all that is left."
    )
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and input returns the first result; another input is refused.",
    )


@strawberry.type
class RefundPayload:
    status: RefundStatus | None = None
    refund_amount: Money | None = None
    invoice_status: InvoiceStatus | None = None
    invoice_id: strawberry.ID | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Refund a paid invoice through its gateway, fully when no amount is given.",
    )
    async def refund(self, info: Info, input: RefundInput) -> RefundPayload | None:
        context = info.context

        async def run():
            invoice_id = decode_global_id(input.invoice_id, "Invoice", "invoiceId")
            return await refunds.refund_invoice(
                context.db,
                context.actor,
                invoice_id=invoice_id,
                amount=input.amount,
                reason=input.reason,
                idempotency_key=input.idempotency_key,
                gateways=context.gateways,
                now=context.now,
            )

        outcome, errors = await attempt(run())
        if outcome is None:
            return RefundPayload(errors=errors)
        if outcome.failure_message:
            errors = [BillingError(code=DomainBillingErrorCode.PAYMENT_FAILED, message=outcome.failure_message)]
        return RefundPayload(
            status=RefundStatus(outcome.status.value),
            refund_amount=Money.of(outcome.amount, outcome.currency),
            invoice_status=outcome.invoice_status,
            invoice_id=strawberry.ID(input.invoice_id),
            errors=errors,
        )
