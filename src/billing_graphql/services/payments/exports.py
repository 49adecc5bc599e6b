"""Payments and refunds of a date range, as rows for an export, streamed from the database.

Days and times are in the book's time zone (BILLING_TIMEZONE, default UTC), times with their
offset. Each row names the buyer as its invoice does (the legal name and NPWP copied when the
invoice was finalized) and carries its share of the invoice's DPP (the tax base) and PPN: the
invoice's amounts in proportion to the row's amount over the invoice's total, rounded once
(``domain.tax.in_proportion``), refunds negative; both empty for an invoice without tax.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from sqlalchemy import String, cast, func, literal, select, union_all

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, InvoiceParties, Organization, Payment, Refund
from billing_graphql.domain.money import Money
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
        )


def _utc(day: date, zone: tzinfo) -> datetime:
    """00:00 of ``day`` in ``zone``, as UTC; clamped at the ends of the calendar (0001-01-01 in a
    zone east of UTC starts before the first instant Python has)."""
    local = datetime.combine(day, time.min, tzinfo=zone)
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if day.year == 1 else datetime.max.replace(tzinfo=UTC)


def day_range(start: date, end: date, timezone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in ``timezone``, as UTC instants: both days included."""
    return _utc(start, timezone), _utc(end + timedelta(days=1), timezone)


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
    async with db.read() as session:
        result = await session.stream(statement)
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
            yield ExportRow(
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
                npwp=row.buyer_tax_id if row.buyer_country in ("ID", None) else None,
                dpp=dpp,
                ppn=ppn,
                timezone=timezone,
            )
