"""The CreditNote type: a correction of an invoice, its lines, refunds and PDF."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay

from billing_graphql.db.models import CreditNote as CreditNoteRow
from billing_graphql.db.models import CreditNoteLine as CreditNoteLineRow
from billing_graphql.domain.credit_notes import CreditNoteOutcome as DomainCreditNoteOutcome
from billing_graphql.domain.credit_notes import CreditNoteReason as DomainCreditNoteReason
from billing_graphql.domain.credit_notes import CreditNoteStatus as DomainCreditNoteStatus
from billing_graphql.graphql.billing.types import InvoiceType, RefundType
from billing_graphql.graphql.columns import Children, Form, Nested, Parent, columns, money, resolved
from billing_graphql.graphql.common import Money, from_row, load_nodes
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import MANAGERS
from billing_graphql.services.billing.credit_notes import credit_note_pdf_path

CreditNoteReason = strawberry.enum(DomainCreditNoteReason, name="CreditNoteReason")
CreditNoteOutcome = strawberry.enum(
    DomainCreditNoteOutcome, name="CreditNoteOutcome",
    description="Where the credit goes: REFUND (through the processor), CREDIT_BALANCE (the account balance), "
                "REDUCE_AMOUNT_DUE (off what an unpaid invoice asks for).")
CreditNoteStatus = strawberry.enum(
    DomainCreditNoteStatus, name="CreditNoteStatus",
    description="ISSUED; VOID when the processor refused its refund (nothing was credited).")


@strawberry.type(name="CreditNoteLine", description="A line of a credit note; the amount includes tax.")
class CreditNoteLineType:
    description: str
    amount: Money
    invoice_line_id: strawberry.ID | None = strawberry.field(
        description="The invoice line it credits (null for a credit note given as an amount).")

    @classmethod
    def from_row(cls, row: CreditNoteLineRow, currency: str) -> CreditNoteLineType:
        return from_row(cls, row, currency)


@strawberry.type(name="CreditNote", description="A correction of a finalized invoice: CN-YYYYMM-000001, tax reversed "
                                                "in proportion.")
class CreditNoteType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[CreditNoteRow]
    number: str
    status: CreditNoteStatus
    reason: CreditNoteReason
    outcome: CreditNoteOutcome
    memo: str | None
    currency: str
    subtotal: Money = strawberry.field(description="total - tax: the net amount credited.")
    tax: Money = strawberry.field(description="The invoice's tax reversed: in proportion, rounded once.")
    total: Money = strawberry.field(description="What is credited, tax included.")
    tax_name: str | None
    tax_rate: Decimal | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: CreditNoteRow) -> CreditNoteType:
        return from_row(cls, row)

    @classmethod
    def maybe(cls, row: CreditNoteRow | None) -> CreditNoteType | None:
        return cls.from_row(row) if row is not None else None

    @strawberry.field(description="The credit note as PDF (owner/admin of its organization, or super-admin).")
    def pdf_url(self, info: Info) -> str:
        return f"{info.context.settings.public_url}{credit_note_pdf_path(self.row.id)}"

    @strawberry.field(description="The invoice it corrects.")
    async def invoice(self, info: Info) -> InvoiceType | None:
        return InvoiceType.maybe(await info.context.loaders.invoice_by_id.load(self.row.invoice_id))

    @strawberry.field
    async def lines(self, info: Info) -> list[CreditNoteLineType]:
        rows = await info.context.loaders.lines_by_credit_note.load(self.row.id)
        return [CreditNoteLineType.from_row(line, self.row.currency) for (line,) in rows]

    @strawberry.field(description="The refunds paying it out (outcome REFUND).")
    async def refunds(self, info: Info) -> list[RefundType]:
        rows = await info.context.loaders.refunds_by_credit_note.load(self.row.id)
        return [RefundType.from_row(refund) for (refund,) in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        allowed = actor is not None and actor.role in MANAGERS
        return await load_nodes(info.context.loaders.credit_note_by_id, node_ids, cls.from_row,
                                lambda row: allowed and actor.may_see(row.organization_id))


def _pdf_url_sql(sql: Any, row: str, *parents: str) -> str:
    """``CreditNoteType.pdf_url`` in SQL (``credit_note_pdf_path``; ``public_url`` as a SQL string literal)."""
    path = credit_note_pdf_path(uuid.UUID(int=0)).replace(str(uuid.UUID(int=0)), "{}")
    before, after = path.split("{}")
    return f"{sql.public_url} || '{before}' || {sql.uuid_text(f'{row}.id')} || '{after}'"


# Lines carry no currency: the credit note's (the parent row, in SQL; ``currency`` in Python).
columns(
    CreditNoteLineType, CreditNoteLineRow,
    amount=Form(lambda row, currency: Money.of(row.amount, currency),
                Nested("Money", lambda sql, row, note: (f"{row}.amount", f"{note}.currency"))),
    invoice_line_id=Form(
        lambda row, currency: strawberry.ID(relay.to_base64("InvoiceLine", row.invoice_line_id))
        if row.invoice_line_id else None,
        lambda sql, row, *parents: (f"CASE WHEN {row}.invoice_line_id IS NULL THEN NULL "
                                    f"ELSE {sql.global_id('InvoiceLine', f'{row}.invoice_line_id')} END")),
)
columns(
    CreditNoteType, CreditNoteRow,
    subtotal=money("subtotal"), tax=money("tax"), total=money("total"),
    pdf_url=resolved(_pdf_url_sql),
    invoice=resolved(Parent("invoices", "invoice_id")),
    lines=resolved(Children("credit_note_lines", "credit_note_id", "position")),  # lines_by_credit_note
    refunds=resolved(Children("refunds", "credit_note_id", "created_at, id")),  # refunds_by_credit_note
)


@strawberry.type
class CreditNoteConnection(relay.Connection[CreditNoteType]):
    """Credit notes, newest first, paged."""


def credit_note_visible(actor: Any, organization_id: uuid.UUID) -> bool:
    return actor is not None and actor.role in MANAGERS and actor.may_see(organization_id)
