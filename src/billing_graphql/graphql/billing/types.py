"""Invoice types: the invoice with its lines and payments, and the preview of a change."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from billing_graphql.db.models import BillingReason as DomainBillingReason
from billing_graphql.db.models import Invoice as InvoiceRow
from billing_graphql.db.models import InvoiceLine as InvoiceLineRow
from billing_graphql.db.models import InvoiceLineKind as DomainInvoiceLineKind
from billing_graphql.db.models import Payment as PaymentRow
from billing_graphql.db.models import PaymentStatus as DomainPaymentStatus
from billing_graphql.db.models import Refund as RefundRow
from billing_graphql.domain.invoices import LineDraft
from billing_graphql.domain.proration import round_half_up
from billing_graphql.domain.status import InvoiceStatus as DomainInvoiceStatus
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import MANAGERS
from billing_graphql.graphql.platform.billing_details import BillingDetailsType
from billing_graphql.graphql.payments.refunds import RefundStatus
from billing_graphql.graphql.common import Money, decode_ids
from billing_graphql.graphql.platform.types import OrganizationType
from billing_graphql.services.billing.invoicing import amount_due
from billing_graphql.services.subscriptions.common import InvoicePreview as PreviewValue

if TYPE_CHECKING:
    from billing_graphql.graphql.subscriptions.types import SubscriptionType

InvoiceStatus = strawberry.enum(DomainInvoiceStatus, name="InvoiceStatus")
InvoiceLineKind = strawberry.enum(DomainInvoiceLineKind, name="InvoiceLineKind")
BillingReason = strawberry.enum(DomainBillingReason, name="BillingReason")
PaymentStatus = strawberry.enum(DomainPaymentStatus, name="PaymentStatus")


def _rounded(value: Decimal, currency: str) -> Money:
    return Money.of(round_half_up(Fraction(value)), currency)


@strawberry.type(name="InvoiceLine", description="One line of an invoice; amounts rounded once, credits negative.")
class InvoiceLineType:
    kind: InvoiceLineKind
    description: str
    quantity: Decimal
    unit_amount: Money = strawberry.field(description="The unit amount, rounded to the currency (the stored "
                                                      "value keeps fractions of a minor unit for prorations).")
    amount: Money
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def from_row(cls, row: InvoiceLineRow | LineDraft, currency: str) -> InvoiceLineType:
        return cls(
            kind=DomainInvoiceLineKind(row.kind.value),
            description=row.description,
            quantity=row.quantity,
            unit_amount=_rounded(row.unit_amount, currency),
            amount=Money.of(row.amount, currency),
            period_start=row.period_start,
            period_end=row.period_end,
        )


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
        return cls(
            id=strawberry.ID(relay.to_base64("Payment", row.id)),
            amount=Money.of(row.amount, row.currency),
            amount_refunded=Money.of(row.amount_refunded, row.currency),
            status=row.status,
            gateway=row.gateway,
            gateway_payment_id=row.gateway_payment_id,
            failure_code=row.failure_code,
            failure_message=row.failure_message,
            created_at=row.created_at,
        )


@strawberry.type(name="Refund", description="A refund of (part of) an invoice's payments through their gateway.")
class RefundType:
    id: strawberry.ID
    amount: Money
    status: RefundStatus
    reason: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: RefundRow) -> RefundType:
        return cls(
            id=strawberry.ID(relay.to_base64("Refund", row.id)),
            amount=Money.of(row.amount, row.currency),
            status=RefundStatus(row.status.value),
            reason=row.reason,
            created_at=row.created_at,
        )


@strawberry.type(name="Invoice", description="An invoice: lines, discount, tax, account credit, payments.")
class InvoiceType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[InvoiceRow]

    @classmethod
    def from_row(cls, row: InvoiceRow) -> InvoiceType:
        return cls(id=str(row.id), row=row)

    @classmethod
    def maybe(cls, row: InvoiceRow | None) -> InvoiceType | None:
        return cls.from_row(row) if row is not None else None

    def _money(self, minor: int) -> Money:
        return Money.of(minor, self.row.currency)

    @strawberry.field(description="The buyer's billing details as copied when the invoice was finalized; "
                                  "null for drafts and where none were given.")
    async def billing_details(self, info: Info) -> BillingDetailsType | None:
        value = await info.context.loaders.buyer_by_invoice.load(self.row.id)
        return BillingDetailsType.from_value(value) if value is not None else None

    @strawberry.field(description="Assigned when the invoice is finalized: INV-YYYYMM-000001.")
    def invoice_number(self) -> str | None:
        return self.row.number

    @strawberry.field
    def currency(self) -> str:
        return self.row.currency

    @strawberry.field
    def status(self) -> InvoiceStatus:
        return self.row.status

    @strawberry.field
    def billing_reason(self) -> BillingReason:
        return self.row.billing_reason

    @strawberry.field
    def subtotal(self) -> Money:
        return self._money(self.row.subtotal)

    @strawberry.field(description="The coupon's discount, taken before tax.")
    def discount(self) -> Money:
        return self._money(self.row.discount)

    @strawberry.field(description="Account credit spent on this invoice, after tax.")
    def credit_applied(self) -> Money:
        return self._money(self.row.credit_applied)

    @strawberry.field
    def tax(self) -> Money:
        return self._money(self.row.tax)

    @strawberry.field
    def tax_name(self) -> str | None:
        return self.row.tax_name

    @strawberry.field(description="The tax rate as applied to its base (PPN: 0.12 on 11/12 of the price).")
    def tax_rate(self) -> Decimal | None:
        return self.row.tax_rate

    @strawberry.field(description="The share of the amount the rate applies to, e.g. \"11/12\".")
    def tax_base(self) -> str | None:
        if self.row.tax_name is None:
            return None
        return f"{self.row.tax_base_numerator}/{self.row.tax_base_denominator}"

    @strawberry.field(description="subtotal - discount + tax.")
    def total(self) -> Money:
        return self._money(self.row.total)

    @strawberry.field
    def amount_paid(self) -> Money:
        return self._money(self.row.amount_paid)

    @strawberry.field
    def amount_refunded(self) -> Money:
        return self._money(self.row.amount_refunded)

    @strawberry.field(description="total - creditApplied - amountPaid.")
    def amount_due(self) -> Money:
        return self._money(amount_due(self.row))

    @strawberry.field
    def retry_count(self) -> int:
        return self.row.retry_count

    @strawberry.field
    def last_retry_at(self) -> datetime | None:
        return self.row.last_retry_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def finalized_at(self) -> datetime | None:
        return self.row.finalized_at

    @strawberry.field
    def paid_at(self) -> datetime | None:
        return self.row.paid_at

    @strawberry.field
    def due_date(self) -> datetime | None:
        return self.row.due_date

    @strawberry.field
    def period_start(self) -> datetime | None:
        return self.row.period_start

    @strawberry.field
    def period_end(self) -> datetime | None:
        return self.row.period_end

    @strawberry.field
    def gateway_invoice_id(self) -> str | None:
        return self.row.gateway_invoice_id

    @strawberry.field
    def payment_url(self) -> str | None:
        return self.row.payment_url

    @strawberry.field(description="The invoice as PDF (owner/admin of its organization, or super-admin).")
    def pdf_url(self, info: Info) -> str:
        return f"{info.context.settings.public_url}/invoices/{self.row.id}.pdf"

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

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        allowed = actor is not None and actor.role in MANAGERS
        rows = await info.context.loaders.invoice_by_id.load_many(
            [key or uuid.UUID(int=0) for key in decode_ids(node_ids)]
        )
        return [
            cls.from_row(row)
            if allowed and row is not None and actor.organization_in_scope(row.organization_id) == row.organization_id
            else None
            for row in rows
        ]


@strawberry.type
class InvoiceConnection(relay.Connection[InvoiceType]):
    """Invoices, newest first, paged."""


@strawberry.type(description="What a change bills (dry run) or credits: lines and totals, nothing written.")
class InvoicePreview:
    currency: str
    lines: list[InvoiceLineType]
    subtotal: Money
    discount: Money
    tax: Money
    tax_name: str | None
    tax_rate: Decimal | None
    total: Money = strawberry.field(description="Negative when the change is a credit.")
    credit_applied: Money
    amount_due: Money
    credit_added: Money = strawberry.field(description="Account credit the change adds (a downgrade).")
    message: str | None = strawberry.field(
        default=None, description="Why nothing is billed now, e.g. no invoice is due until the trial ends."
    )

    @classmethod
    def from_value(cls, value: PreviewValue | None) -> InvoicePreview | None:
        if value is None:
            return None
        currency = value.currency
        return cls(
            currency=currency,
            lines=[InvoiceLineType.from_row(line, currency) for line in value.lines],
            subtotal=Money.of(value.subtotal, currency),
            discount=Money.of(value.discount, currency),
            tax=Money.of(value.tax, currency),
            tax_name=value.tax_rule.name if value.tax_rule else None,
            tax_rate=value.tax_rule.rate if value.tax_rule else None,
            total=Money.of(value.total, currency),
            credit_applied=Money.of(value.credit_applied, currency),
            amount_due=Money.of(value.amount_due, currency),
            credit_added=Money.of(value.credit_added, currency),
            message=value.message,
        )
