"""Invoice lines and the preview of a change: what ``Invoice`` and ``Subscription`` both show,
kept apart from either type so that neither imports the other for it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import strawberry
from strawberry import relay

from billing_graphql.db.models import InvoiceLine as InvoiceLineRow
from billing_graphql.domain.invoices import InvoiceLineKind as DomainInvoiceLineKind
from billing_graphql.domain.invoices import LineDraft
from billing_graphql.domain.proration import round_half_up
from billing_graphql.graphql.columns import Form, Nested, columns
from billing_graphql.graphql.common import Money, from_row
from billing_graphql.services.subscriptions.results import InvoicePreview as PreviewValue

InvoiceLineKind = strawberry.enum(DomainInvoiceLineKind, name="InvoiceLineKind")


def _rounded(value: Decimal, currency: str) -> Money:
    return Money.of(round_half_up(Fraction(value)), currency)


@strawberry.type(name="InvoiceLine", description="One line of an invoice; amounts rounded once, credits negative.")
class InvoiceLineType:
    id: strawberry.ID | None = strawberry.field(description="Its global ID (what a credit note line credits); "
                                                            "null in a preview.")
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
        return from_row(cls, row, currency)


# Lines carry no currency: the invoice's (the parent row, in SQL; ``currency`` in Python).
columns(
    InvoiceLineType, InvoiceLineRow,
    id=Form(lambda row, currency: strawberry.ID(relay.to_base64("InvoiceLine", row.id))
            if getattr(row, "id", None) else None,  # a preview's lines (LineDraft) have none
            lambda sql, row, invoice: sql.global_id("InvoiceLine", f"{row}.id")),
    unit_amount=Form(lambda row, currency: _rounded(row.unit_amount, currency),
                     Nested("Money", lambda sql, row, invoice: (sql.rounded(f"{row}.unit_amount"), f"{invoice}.currency"))),
    amount=Form(lambda row, currency: Money.of(row.amount, currency),
                Nested("Money", lambda sql, row, invoice: (f"{row}.amount", f"{invoice}.currency"))),
)


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
