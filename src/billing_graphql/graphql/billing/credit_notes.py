"""Staff mutations on an invoice's life: voidInvoice, markInvoiceUncollectible, createCreditNote
(super-admins)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.billing.credit_note_types import CreditNoteOutcome, CreditNoteReason, CreditNoteType
from billing_graphql.graphql.billing.types import InvoiceType
from billing_graphql.graphql.common import attempt
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.ids import decode_id
from billing_graphql.graphql.permissions import allow
from billing_graphql.services.billing import credit_notes, invoice_lifecycle

_KEY = "Retrying with the same key and input returns the first result; another input is refused."


@strawberry.input
class VoidInvoiceInput:
    invoice_id: strawberry.ID
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.input
class MarkInvoiceUncollectibleInput:
    invoice_id: strawberry.ID
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.type
class VoidInvoicePayload:
    invoice: InvoiceType | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class MarkInvoiceUncollectiblePayload:
    invoice: InvoiceType | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class CreditNoteLineInput:
    invoice_line_id: strawberry.ID = strawberry.field(description="The invoice line's global ID (InvoiceLine.id).")
    amount: Decimal | None = strawberry.field(
        default=None, description="Tax included, in major units; omitted credits all that is left of the line.")


@strawberry.input
class CreateCreditNoteInput:
    invoice_id: strawberry.ID
    lines: list[CreditNoteLineInput] | None = strawberry.field(default=None, description="Lines, or an amount.")
    amount: Decimal | None = strawberry.field(
        default=None, description="What is credited, tax included, in major units of the invoice's currency.")
    reason: CreditNoteReason
    memo: str | None = None
    outcome: CreditNoteOutcome
    idempotency_key: str | None = strawberry.field(default=None, description=_KEY)


@strawberry.type
class CreateCreditNotePayload:
    credit_note: CreditNoteType | None = None
    invoice: InvoiceType | None = strawberry.field(default=None, description="The invoice as the note left it.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="OPEN -> VOID: nothing more is collected; its account credit and coupon months are given back. "
                    "A paid invoice is corrected with createCreditNote instead (INVALID_TRANSITION).",
    )
    async def void_invoice(self, info: Info, input: VoidInvoiceInput) -> VoidInvoicePayload | None:
        context = info.context
        invoice, errors = await attempt(lambda: invoice_lifecycle.void_invoice(
            context.db, context.actor, invoice_id=decode_id(input.invoice_id, "Invoice", "invoiceId"),
            reason=input.reason, idempotency_key=input.idempotency_key, now=context.now))
        return VoidInvoicePayload(invoice=InvoiceType.maybe(invoice), errors=errors)

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="OPEN -> UNCOLLECTIBLE: dunning stops, analytics counts it as bad debt; payInvoice may still pay "
                    "it (-> PAID).",
    )
    async def mark_invoice_uncollectible(
        self, info: Info, input: MarkInvoiceUncollectibleInput
    ) -> MarkInvoiceUncollectiblePayload | None:
        context = info.context
        invoice, errors = await attempt(lambda: invoice_lifecycle.mark_uncollectible(
            context.db, context.actor, invoice_id=decode_id(input.invoice_id, "Invoice", "invoiceId"),
            reason=input.reason, idempotency_key=input.idempotency_key, now=context.now))
        return MarkInvoiceUncollectiblePayload(invoice=InvoiceType.maybe(invoice), errors=errors)

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Credit (part of) a finalized invoice by lines or an amount, tax included; its tax is reversed "
                    "in proportion. Outcome REFUND or CREDIT_BALANCE on a paid invoice, REDUCE_AMOUNT_DUE on an "
                    "OPEN or UNCOLLECTIBLE one; never more than the invoice's total in all.",
    )
    async def create_credit_note(self, info: Info, input: CreateCreditNoteInput) -> CreateCreditNotePayload | None:
        context = info.context

        def lines():
            if input.lines is None:
                return None
            return [(decode_id(line.invoice_line_id, "InvoiceLine", f"lines.{index}.invoiceLineId", "Invoice line"),
                     line.amount) for index, line in enumerate(input.lines)]

        issued, errors = await attempt(lambda: credit_notes.issue_credit_note(
            context.db, context.actor, invoice_id=decode_id(input.invoice_id, "Invoice", "invoiceId"),
            reason=input.reason, outcome=input.outcome, amount=input.amount, lines=lines(), memo=input.memo,
            idempotency_key=input.idempotency_key, gateways=context.gateways, now=context.now))
        if issued is None:
            return CreateCreditNotePayload(errors=errors)
        note = issued.credit_note
        if note.status.value == "VOID":
            from billing_graphql.domain.errors import BillingErrorCode

            errors = [BillingError(code=BillingErrorCode.PAYMENT_FAILED,
                                   message="The processor refused the refund; the credit note is VOID.")]
        return CreateCreditNotePayload(credit_note=CreditNoteType.from_row(note),
                                       invoice=InvoiceType.maybe(issued.invoice), errors=errors)
