"""Payments and refunds of a date range, as rows for an export, streamed from the database.

Days and times are in the book's time zone (BILLING_TIMEZONE, default UTC), times with their
offset. Each row names the buyer as its invoice does (the legal name and NPWP copied when the
invoice was finalized) and carries its share of the invoice's DPP (the tax base) and PPN: the
invoice's amounts in proportion to the row's amount over the invoice's total, rounded once
(``domain.tax.in_proportion``), refunds negative; both empty for an invoice without tax. Each row
also carries its invoice's USAGE lines and their tiers (``usage_lines``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal

from sqlalchemy import String, cast, func, literal, select, union_all

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, InvoiceLine, InvoiceLineKind, InvoiceParties, Organization, Payment, Refund
from billing_graphql.domain.billing_details import npwp
from billing_graphql.domain.day_range import day_range
from billing_graphql.domain.money import Money, exponent
from billing_graphql.domain.tax import in_proportion, tax_base

COLUMNS = (
    "type",
    "id",
    "created_at",
    "organization",
    "organization_external_id",
    "legal_name",
    "npwp",
    "invoice_number",
    "status",
    "amount",
    "dpp",
    "ppn",
    "currency",
    "gateway",
    "gateway_reference",
    "description",
    "usage_lines",
)
STREAM_BATCH = 500


@dataclass(frozen=True, slots=True)
class ExportRow:
    type: str  # "payment" or "refund"
    id: uuid.UUID
    created_at: datetime
    organization: str
    organization_external_id: str
    invoice_number: str | None
    status: str
    amount: Decimal  # major units; refunds negative
    currency: str
    gateway: str
    gateway_reference: str | None
    description: str
    legal_name: str | None = None  # as copied onto the invoice at finalization
    npwp: str | None = None  # the buyer's tax ID, when the buyer is Indonesian (or gave no country)
    dpp: Decimal | None = None  # the row's share of the invoice's tax base; None: the invoice has no tax
    ppn: Decimal | None = None  # the row's share of the invoice's tax
    timezone: tzinfo = UTC
    usage_lines: str = ""  # the invoice's USAGE lines with their tiers (``usage_line_text``)

    def values(self) -> tuple:
        return (
            self.type,
            str(self.id),
            self.created_at.astimezone(self.timezone).isoformat(),
            self.organization,
            self.organization_external_id,
            self.legal_name or "",
            self.npwp or "",
            self.invoice_number or "",
            self.status,
            f"{self.amount:f}",
            "" if self.dpp is None else f"{self.dpp:f}",
            "" if self.ppn is None else f"{self.ppn:f}",
            self.currency,
            self.gateway,
            self.gateway_reference or "",
            self.description,
            self.usage_lines,
        )


def _share(value: int, part: int, whole: int, currency: str) -> Decimal:
    return Money(in_proportion(value, part, whole), currency).amount


async def stream_payment_rows(
    db: Database, *, organization_id: uuid.UUID | None, start: date, end: date, timezone: tzinfo = UTC
) -> AsyncIterator[ExportRow]:
    """Every payment and refund created in [start, end] (days in ``timezone``), oldest first; of one
    organization, or of all when ``organization_id`` is None."""
    since, until = day_range(start, end, timezone)
    payments = (
        select(
            literal("payment").label("type"),
            Payment.id.label("id"),
            Payment.created_at.label("created_at"),
            Payment.organization_id.label("organization_id"),
            Payment.invoice_id.label("invoice_id"),
            cast(Payment.status, String).label("status"),
            Payment.amount.label("amount"),
            Payment.currency.label("currency"),
            Payment.gateway.label("gateway"),
            Payment.gateway_payment_id.label("reference"),
            func.coalesce(Payment.failure_message, "").label("note"),
        )
        .where(Payment.created_at >= since, Payment.created_at < until)
    )
    refunds = (
        select(
            literal("refund").label("type"),
            Refund.id,
            Refund.created_at,
            Refund.organization_id,
            Refund.invoice_id,
            cast(Refund.status, String),
            -Refund.amount,
            Refund.currency,
            Refund.gateway,
            Refund.gateway_refund_id,
            func.coalesce(Refund.reason, ""),
        )
        .where(Refund.created_at >= since, Refund.created_at < until)
    )
    if organization_id is not None:
        payments = payments.where(Payment.organization_id == organization_id)
        refunds = refunds.where(Refund.organization_id == organization_id)
    moves = union_all(payments, refunds).subquery("moves")
    statement = (
        select(moves, Organization.name, Organization.external_id, Invoice.number, Invoice.subtotal,
               Invoice.discount, Invoice.tax, Invoice.tax_rate, Invoice.tax_base_numerator,
               Invoice.tax_base_denominator, Invoice.total, InvoiceParties.buyer_legal_name,
               InvoiceParties.buyer_country, InvoiceParties.buyer_tax_id)
        .join(Organization, Organization.id == moves.c.organization_id)
        .join(Invoice, Invoice.id == moves.c.invoice_id)
        .outerjoin(InvoiceParties, InvoiceParties.invoice_id == moves.c.invoice_id)
        .order_by(moves.c.created_at, moves.c.type, moves.c.id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    async with db.stream() as session:
        result = await session.stream(statement)
        batch: list[ExportRow] = []
        async for row in result:
            number = row.number
            if row.note:
                description = row.note
            elif row.type == "payment":
                description = f"Payment of invoice {number or 'DRAFT'}"
            else:
                description = f"Refund of invoice {number or 'DRAFT'}"
            amount, currency = int(row.amount), row.currency
            dpp = ppn = None
            if row.tax_rate is not None:
                base = tax_base(row.subtotal - row.discount, row.tax_base_numerator, row.tax_base_denominator)
                dpp = _share(base, amount, row.total, currency)
                ppn = _share(row.tax, amount, row.total, currency)
            batch.append(ExportRow(
                type=row.type,
                id=row.id if isinstance(row.id, uuid.UUID) else uuid.UUID(str(row.id)),
                created_at=row.created_at,
                organization=row.name,
                organization_external_id=row.external_id,
                invoice_number=number,
                status=row.status,
                amount=Money(amount, currency).amount,
                currency=currency,
                gateway=row.gateway,
                gateway_reference=row.reference,
                description=description,
                legal_name=row.buyer_legal_name,
                npwp=npwp(row.buyer_tax_id, row.buyer_country),
                dpp=dpp,
                ppn=ppn,
                timezone=timezone,
            ))
            if len(batch) >= STREAM_BATCH:
                for item in await _with_usage(db, batch):
                    yield item
                batch = []
        for item in await _with_usage(db, batch):
            yield item


async def _with_usage(db: Database, rows: list[ExportRow]) -> list[ExportRow]:
    """``rows`` with their invoices' USAGE lines (one statement per batch, in a session of its own
    while the export's stream holds its connection)."""
    numbers = {row.invoice_number for row in rows if row.invoice_number}
    if not numbers:
        return rows
    async with db.read() as session:
        found = (await session.execute(
            select(Invoice.number, Invoice.currency, InvoiceLine)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
            .where(Invoice.number.in_(numbers), InvoiceLine.kind == InvoiceLineKind.USAGE)
            .order_by(Invoice.number, InvoiceLine.position)
        )).all()
    texts: dict[str, list[str]] = {}
    for number, currency, line in found:
        texts.setdefault(number, []).append(usage_line_text(line, currency))
    return [replace(row, usage_lines=" | ".join(texts.get(row.invoice_number or "", []))) for row in rows]


def usage_line_text(line: InvoiceLine, currency: str) -> str:
    """A USAGE line in one cell: "Messages (graduated tiers): 5000 = 470000 [1-4000: 4000 x 100 = 400000;
    4001+: 1000 x 60 + 10000 = 70000]" (amounts in major units; tiers exact)."""
    def major(minor: Decimal) -> str:
        return f"{minor.scaleb(-exponent(currency)).normalize():f}"

    text = f"{line.description}: {line.quantity.normalize():f} = {Money(line.amount, currency).amount:f}"
    if line.tier_breakdown:
        tiers = []
        for tier in line.tier_breakdown:
            span = f"{tier['from_unit']}-{tier['to_unit']}" if tier["to_unit"] is not None else f"{tier['from_unit']}+"
            flat = Decimal(tier["flat_amount"])
            tiers.append(f"{span}: {tier['units']} x {major(Decimal(tier['unit_amount']))}"
                         + (f" + {major(flat)}" if flat else "") + f" = {major(Decimal(tier['amount']))}")
        text += " [" + "; ".join(tiers) + "]"
    return text
