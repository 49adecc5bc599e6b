"""Invoices and credit notes of a date range, as rows for the tax export (``GET /invoices/export.csv``).

One row per finalized invoice (by the day it was finalized) and per credit note (by the day it was
issued), oldest first, days in the book's time zone (BILLING_TIMEZONE) as in the payments export:
number, dates, status, the customer's legal name and NPWP as copied on the invoice (the NPWP only
for an Indonesian buyer, ``domain.billing_details.npwp``), DPP (the tax base), PPN, total, amount
paid and amount credited, in major units as exact decimal strings. Credit notes are negative (they
reverse DPP, PPN and total) and name the invoice they correct. Streamed from the database in batches.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

from sqlalchemy import String, cast, literal, null, select, union_all

from billing_graphql.db.engine import Database
from billing_graphql.db.models import CreditNote, Invoice, InvoiceParties, Organization
from billing_graphql.domain.billing_details import npwp
from billing_graphql.domain.day_range import day_of, day_range
from billing_graphql.domain.money import Money
from billing_graphql.domain.tax import tax_base

COLUMNS = (
    "type",
    "number",
    "issued_on",
    "due_on",
    "status",
    "corrects_invoice",
    "organization_external_id",
    "customer_legal_name",
    "npwp",
    "currency",
    "dpp",
    "ppn",
    "total",
    "amount_paid",
    "amount_credited",
)
TEXT_COLUMNS = frozenset({"organization_external_id", "customer_legal_name", "npwp"})
STREAM_BATCH = 500


@dataclass(frozen=True, slots=True)
class TaxRow:
    type: str  # "invoice" or "credit_note"
    number: str
    issued_at: datetime
    due_at: datetime | None
    status: str
    corrects_invoice: str | None
    organization_external_id: str
    customer_legal_name: str
    npwp: str | None
    currency: str
    dpp: int  # minor units; negative on a credit note
    ppn: int
    total: int
    amount_paid: int
    amount_credited: int
    timezone: tzinfo = UTC  # the book's (BILLING_TIMEZONE): the days the row prints

    def values(self) -> tuple[str, ...]:
        def amount(minor: int) -> str:
            return f"{Money(minor, self.currency).amount:f}"

        return (
            self.type, self.number, day_of(self.issued_at, self.timezone).isoformat(),
            day_of(self.due_at, self.timezone).isoformat() if self.due_at else "", self.status,
            self.corrects_invoice or "", self.organization_external_id, self.customer_legal_name, self.npwp or "",
            self.currency, amount(self.dpp), amount(self.ppn), amount(self.total), amount(self.amount_paid),
            amount(self.amount_credited),
        )


async def stream_tax_rows(db: Database, *, organization_id: uuid.UUID | None, start: date,
                          end: date, timezone: tzinfo = UTC) -> AsyncIterator[TaxRow]:
    """Every finalized invoice and credit note issued in [start, end] (days in ``timezone``), oldest
    first; of one organization, or of all when ``organization_id`` is None."""
    since, until = day_range(start, end, timezone)
    issued = Invoice.finalized_at
    invoices = select(
        literal("invoice").label("type"), Invoice.id.label("id"), Invoice.number.label("number"),
        issued.label("issued_at"), Invoice.due_date.label("due_at"), cast(Invoice.status, String).label("status"),
        null().label("corrects"), Invoice.id.label("invoice_id"), Invoice.organization_id.label("organization_id"),
        Invoice.currency.label("currency"), (Invoice.subtotal - Invoice.discount).label("net"),
        Invoice.tax.label("tax"), Invoice.total.label("total"), Invoice.amount_paid.label("paid"),
        Invoice.amount_credited.label("credited"), Invoice.tax_base_numerator.label("numerator"),
        Invoice.tax_base_denominator.label("denominator"),
    ).where(Invoice.number.is_not(None), issued >= since, issued < until)
    notes = select(
        literal("credit_note"), CreditNote.id, CreditNote.number, CreditNote.created_at, null(), cast(CreditNote.status, String),
        Invoice.number, CreditNote.invoice_id, CreditNote.organization_id, CreditNote.currency,
        -CreditNote.subtotal, -CreditNote.tax, -CreditNote.total, literal(0), CreditNote.total,
        CreditNote.tax_base_numerator, CreditNote.tax_base_denominator,
    ).join(Invoice, Invoice.id == CreditNote.invoice_id).where(CreditNote.created_at >= since,
                                                               CreditNote.created_at < until)
    if organization_id is not None:
        invoices = invoices.where(Invoice.organization_id == organization_id)
        notes = notes.where(CreditNote.organization_id == organization_id)
    rows = union_all(invoices, notes).subquery("documents")
    statement = (
        select(rows, Organization.name, Organization.external_id, InvoiceParties.buyer_legal_name,
               InvoiceParties.buyer_country, InvoiceParties.buyer_tax_id)
        .join(Organization, Organization.id == rows.c.organization_id)
        .outerjoin(InvoiceParties, InvoiceParties.invoice_id == rows.c.invoice_id)
        .order_by(rows.c.issued_at, rows.c.type.desc(), rows.c.number)
        .execution_options(yield_per=STREAM_BATCH)
    )
    async with db.stream() as session:
        result = await session.stream(statement)
        async for row in result:
            yield TaxRow(
                type=row.type, number=row.number, issued_at=row.issued_at, due_at=row.due_at, status=row.status,
                corrects_invoice=row.corrects, organization_external_id=row.external_id,
                customer_legal_name=row.buyer_legal_name or row.name, npwp=npwp(row.buyer_tax_id, row.buyer_country),
                currency=row.currency,
                dpp=tax_base(int(row.net), row.numerator, row.denominator), ppn=int(row.tax), total=int(row.total),
                amount_paid=int(row.paid), amount_credited=int(row.credited), timezone=timezone,
            )
