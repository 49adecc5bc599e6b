"""Invoice types: the invoice with its lines and payments, and the preview of a change."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from billing_graphql.db.models import BillingReason as DomainBillingReason
from billing_graphql.db.models import Invoice as InvoiceRow
from billing_graphql.db.models import Payment as PaymentRow
from billing_graphql.db.models import PaymentStatus as DomainPaymentStatus
from billing_graphql.db.models import Refund as RefundRow
from billing_graphql.domain.refunds import RefundStatus as DomainRefundStatus
from billing_graphql.domain.status import InvoiceStatus as DomainInvoiceStatus
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import MANAGERS
from billing_graphql.graphql.billing.lines import InvoiceLineType
from billing_graphql.graphql.columns import Children, columns, computed, global_id, money, money_of, renamed, resolved
from billing_graphql.graphql.common import Money, from_row, read_node_ids
from billing_graphql.graphql.platform.billing_details import BillingDetailsType
from billing_graphql.graphql.platform.types import OrganizationType

if TYPE_CHECKING:
    from billing_graphql.graphql.billing.credit_note_types import CreditNoteType
    from billing_graphql.graphql.subscriptions.types import SubscriptionType

InvoiceStatus = strawberry.enum(DomainInvoiceStatus, name="InvoiceStatus")
BillingReason = strawberry.enum(DomainBillingReason, name="BillingReason")
PaymentStatus = strawberry.enum(DomainPaymentStatus, name="PaymentStatus")
RefundStatus = strawberry.enum(DomainRefundStatus, name="RefundStatus", description="Where a refund stands at the gateway.")


@strawberry.type(name="Payment", description="A charge attempt on an invoice.")
class PaymentType:
    id: strawberry.ID
    amount: Money
    amount_refunded: Money
    status: PaymentStatus
    gateway: str
    gateway_payment_id: str | None
    failure_code: str | None
    failure_message: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: PaymentRow) -> PaymentType:
        return from_row(cls, row)


columns(PaymentType, PaymentRow, id=global_id("Payment"), amount=money("amount"),
        amount_refunded=money("amount_refunded"))


@strawberry.type(name="Refund", description="A refund of (part of) an invoice's payments through their gateway.")
class RefundType:
    id: strawberry.ID
    amount: Money
    status: RefundStatus
    reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RefundRow) -> RefundType:
        return from_row(cls, row)


# RefundStatus names the payment statuses it shows: the stored name is the GraphQL value.
columns(RefundType, RefundRow, id=global_id("Refund"), amount=money("amount"),
        status=computed(lambda row: RefundStatus(row.status.value), renamed("status").sql))


@strawberry.type(name="Invoice", description="An invoice: lines, discount, tax, account credit, payments.")
class InvoiceType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[InvoiceRow]
    invoice_number: str | None = strawberry.field(description="Assigned when the invoice is finalized: INV-YYYYMM-000001.")
    currency: str
    status: InvoiceStatus
    billing_reason: BillingReason
    subtotal: Money
    discount: Money = strawberry.field(description="The coupon's discount, taken before tax.")
    credit_applied: Money = strawberry.field(description="Account credit spent on this invoice, after tax.")
    tax: Money
    tax_name: str | None
    tax_rate: Decimal | None = strawberry.field(
        description="The tax rate as applied to its base (PPN: 0.12 on 11/12 of the price)."
    )
    tax_base: str | None = strawberry.field(description="The share of the amount the rate applies to, e.g. \"11/12\".")
    total: Money = strawberry.field(description="subtotal - discount + tax.")
    amount_paid: Money
    amount_refunded: Money
    amount_credited: Money = strawberry.field(
        description="What its credit notes credit in all, tax included; never more than the total.")
    amount_due: Money = strawberry.field(
        description="total - creditApplied - amountPaid - what REDUCE_AMOUNT_DUE credit notes took off.")
    retry_count: int
    last_retry_at: datetime | None
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    due_date: datetime | None
    period_start: datetime | None
    period_end: datetime | None
    gateway_invoice_id: str | None
    payment_url: str | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None

    @classmethod
    def from_row(cls, row: InvoiceRow) -> InvoiceType:
        return from_row(cls, row)

    @classmethod
    def maybe(cls, row: InvoiceRow | None) -> InvoiceType | None:
        return cls.from_row(row) if row is not None else None

    @strawberry.field(description="The invoice as PDF (owner/admin of its organization, or super-admin).")
    def pdf_url(self, info: Info) -> str:
        return f"{info.context.settings.public_url}/invoices/{self.row.id}.pdf"  # SQL form: _pdf_url_sql

    @strawberry.field(description="The buyer's billing details as copied when the invoice was finalized; "
                                  "null for drafts and where none were given.")
    async def billing_details(self, info: Info) -> BillingDetailsType | None:
        value = await info.context.loaders.buyer_by_invoice.load(self.row.id)
        return BillingDetailsType.from_value(value) if value is not None else None

    @strawberry.field
    async def organization(self, info: Info) -> OrganizationType | None:
        row = await info.context.loaders.organization_by_id.load(self.row.organization_id)
        return OrganizationType.from_row(row) if row else None

    @strawberry.field
    async def subscription(
        self, info: Info
    ) -> Annotated[SubscriptionType, strawberry.lazy("billing_graphql.graphql.subscriptions.types")] | None:
        from billing_graphql.graphql.subscriptions.types import SubscriptionType

        if self.row.subscription_id is None:
            return None
        row = await info.context.loaders.subscription_by_id.load(self.row.subscription_id)
        return SubscriptionType.from_row(row) if row else None

    @strawberry.field
    async def lines(self, info: Info) -> list[InvoiceLineType]:
        rows = await info.context.loaders.lines_by_invoice.load(self.row.id)
        return [InvoiceLineType.from_row(line, self.row.currency) for (line,) in rows]

    @strawberry.field
    async def payments(self, info: Info) -> list[PaymentType]:
        rows = await info.context.loaders.payments_by_invoice.load(self.row.id)
        return [PaymentType.from_row(payment) for (payment,) in rows]

    @strawberry.field(description="Refunds of this invoice, oldest first (FAILED ones included).")
    async def refunds(self, info: Info) -> list[RefundType]:
        rows = await info.context.loaders.refunds_by_invoice.load(self.row.id)
        return [RefundType.from_row(refund) for (refund,) in rows]

    @strawberry.field(description="Its credit notes, oldest first (VOID ones included).")
    async def credit_notes(
        self, info: Info
    ) -> list[Annotated[CreditNoteType, strawberry.lazy("billing_graphql.graphql.billing.credit_note_types")]]:
        from billing_graphql.graphql.billing.credit_note_types import CreditNoteType

        rows = await info.context.loaders.credit_notes_by_invoice.load(self.row.id)
        return [CreditNoteType.from_row(note) for (note,) in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        allowed = actor is not None and actor.role in MANAGERS
        rows = await info.context.loaders.invoice_by_id.load_many(read_node_ids(node_ids))
        return [
            cls.from_row(row)
            if allowed and row is not None and actor.organization_in_scope(row.organization_id) == row.organization_id
            else None
            for row in rows
        ]


def _tax_base(row: InvoiceRow) -> str | None:
    return f"{row.tax_base_numerator}/{row.tax_base_denominator}" if row.tax_name is not None else None


def _tax_base_sql(sql: Any, row: str, *parents: str) -> str:
    numerator, denominator = sql.to_text(f"{row}.tax_base_numerator"), sql.to_text(f"{row}.tax_base_denominator")
    return f"CASE WHEN {row}.tax_name IS NULL THEN NULL ELSE {numerator} || '/' || {denominator} END"


def _pdf_url_sql(sql: Any, row: str, *parents: str) -> str:
    """``InvoiceType.pdf_url`` in SQL (``public_url`` is the setting, as a SQL string literal)."""
    return f"{sql.public_url} || '/invoices/' || {sql.uuid_text(f'{row}.id')} || '.pdf'"


columns(
    InvoiceType, InvoiceRow,
    invoice_number=renamed("number"),
    tax_base=computed(_tax_base, _tax_base_sql),
    **{name: money(name) for name in ("subtotal", "discount", "credit_applied", "tax", "total", "amount_paid",
                                      "amount_refunded", "amount_credited")},
    amount_due=money_of(InvoiceRow, "amount_due"),
    pdf_url=resolved(_pdf_url_sql),
    lines=resolved(Children("invoice_lines", "invoice_id", "position")),
    payments=resolved(Children("payments", "invoice_id", "created_at, id")),
    refunds=resolved(Children("refunds", "invoice_id", "created_at, id")),
)


@strawberry.type
class InvoiceConnection(relay.Connection[InvoiceType]):
    """Invoices, newest first, paged."""
