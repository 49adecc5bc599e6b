"""Payments and refunds of a date range, as rows for an export, streamed from the database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import String, cast, func, literal, select, union_all

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Organization, Payment, Refund
from billing_graphql.domain.money import Money

COLUMNS = (
    "type",
    "id",
    "created_at",
    "organization",
    "organization_external_id",
    "invoice_number",
    "status",
    "amount",
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

    def values(self) -> tuple:
        return (
            self.type,
            str(self.id),
            self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            self.organization,
            self.organization_external_id,
            self.invoice_number or "",
            self.status,
            f"{self.amount:f}",
            self.currency,
            self.gateway,
            self.gateway_reference or "",
            self.description,
        )


def day_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC): both days included."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


async def stream_payment_rows(
    db: Database, *, organization_id: uuid.UUID | None, start: date, end: date
) -> AsyncIterator[ExportRow]:
    """Every payment and refund created in [start, end] (UTC days), oldest first; of one
    organization, or of all when ``organization_id`` is None."""
    since, until = day_range(start, end)
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
        select(moves, Organization.name, Organization.external_id, Invoice.number)
        .join(Organization, Organization.id == moves.c.organization_id)
        .join(Invoice, Invoice.id == moves.c.invoice_id)
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
            yield ExportRow(
                type=row.type,
                id=row.id if isinstance(row.id, uuid.UUID) else uuid.UUID(str(row.id)),
                created_at=row.created_at,
                organization=row.name,
                organization_external_id=row.external_id,
                invoice_number=number,
                status=row.status,
                amount=Money(int(row.amount), row.currency).amount,
                currency=row.currency,
                gateway=row.gateway,
                gateway_reference=row.reference,
                description=description,
            )
