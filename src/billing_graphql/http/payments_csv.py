"""GET /payments/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD[&organizationId=...] (and, with the same
rules, GET /invoices/export.csv: invoices and credit notes, ``invoices_csv``)

One row per payment and per refund created in the range (days in BILLING_TIMEZONE, default UTC,
both included), oldest first, its time in that zone with the offset; the buyer's legal name and
NPWP as its invoice carries them; amounts, and the row's share of the invoice's DPP and PPN, in
major units as exact decimal strings (refunds negative); RFC 4180 quoting
(CRLF line ends, fields with commas, quotes or line breaks quoted, quotes doubled). Text
that a spreadsheet would run as a formula (starting with = + - @ or a tab/CR) gets a leading
apostrophe. Owners and admins export their organization; super-admins any one
(``organizationId``, a global ID or UUID) or all of them.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from litestar import Request, get
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Parameter
from litestar.response import Stream
from strawberry import relay

from billing_graphql.db.models import Organization
from billing_graphql.domain.day_range import check_day_range
from billing_graphql.domain.errors import BillingError
from billing_graphql.http.access import app_db, app_settings, request_now, require_actor
from billing_graphql.services.billing.invoice_exports import COLUMNS as TAX_COLUMNS
from billing_graphql.services.billing.invoice_exports import TEXT_COLUMNS as TAX_TEXT_COLUMNS
from billing_graphql.services.billing.invoice_exports import stream_tax_rows
from billing_graphql.services.payments.exports import COLUMNS, stream_payment_rows

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = frozenset({"organization", "organization_external_id", "legal_name", "npwp", "gateway_reference",
                           "description"})
ROWS_PER_CHUNK = 200


def parse_day(value: str | None, name: str) -> date:
    if value is None or value.strip() == "":
        raise ClientException(detail=f"Query parameter '{name}' is required, as YYYY-MM-DD.")
    text = value.strip()
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ClientException(detail=f"Query parameter '{name}' must be a date as YYYY-MM-DD; got {value!r}.") from None


def parse_organization_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        global_id = relay.GlobalID.from_id(value)
        if global_id.type_name == "Organization":
            return uuid.UUID(global_id.node_id)
    except ValueError:
        pass
    raise NotFoundException(detail="Organization not found.")


def _safe(column: str, value: str, text_columns: frozenset[str] = _TEXT_COLUMNS) -> str:
    if column in text_columns and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def csv_chunks(rows: AsyncIterator[Any], columns: tuple[str, ...],
                     text_columns: frozenset[str] = _TEXT_COLUMNS) -> AsyncIterator[bytes]:
    """RFC 4180 CSV of ``rows`` (each with ``values()`` in ``columns``' order), a chunk every
    ``ROWS_PER_CHUNK`` rows; text columns that a spreadsheet would run as a formula are defused."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    async for row in rows:
        writer.writerow(tuple(_safe(column, value, text_columns)
                              for column, value in zip(columns, row.values(), strict=True)))
        count += 1
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def export_scope(request: Request[Any, Any, Any], from_: str | None, to: str | None,
                       organization_id: str | None) -> tuple[date, date, uuid.UUID | None]:
    """(first day, last day, organization or None for all) of an export request, checked before the
    first byte is sent: bad or out-of-range dates are a 400, another organization a 404; owners and
    admins export their own organization, super-admins the one named or all."""
    now = await request_now(request)
    actor = await require_actor(request, now)
    start, end = parse_day(from_, "from"), parse_day(to, "to")
    try:
        check_day_range(start, end)  # before the first byte is sent: a 400, not a broken stream
    except BillingError as error:
        raise ClientException(detail=error.message) from None
    requested = parse_organization_id(organization_id) if organization_id else None
    if actor.is_super_admin:
        scope = requested
        if scope is not None:
            async with app_db(request).read() as session:
                if await session.get(Organization, scope) is None:
                    raise NotFoundException(detail="Organization not found.")
    else:
        if requested is not None and requested != actor.organization_id:
            raise NotFoundException(detail="Organization not found.")
        scope = actor.organization_id
    return start, end, scope


def csv_stream(chunks: AsyncIterator[bytes], filename: str) -> Stream:
    return Stream(
        chunks,
        media_type="text/csv",  # Litestar adds "; charset=utf-8" to a text/ type
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@get("/payments/export.csv", name="payments_csv")
async def payments_csv(
    request: Request[Any, Any, Any],
    from_: str | None = Parameter(query="from", default=None, required=False),
    to: str | None = Parameter(query="to", default=None, required=False),
    organization_id: str | None = Parameter(query="organizationId", default=None, required=False),
) -> Stream:
    start, end, scope = await export_scope(request, from_, to, organization_id)
    rows = stream_payment_rows(app_db(request), organization_id=scope, start=start, end=end,
                               timezone=app_settings(request).timezone)
    return csv_stream(csv_chunks(rows, COLUMNS), f"payments-{start}-to-{end}.csv")


@get("/invoices/export.csv", name="invoices_csv")
async def invoices_csv(
    request: Request[Any, Any, Any],
    from_: str | None = Parameter(query="from", default=None, required=False),
    to: str | None = Parameter(query="to", default=None, required=False),
    organization_id: str | None = Parameter(query="organizationId", default=None, required=False),
) -> Stream:
    """GET /invoices/export.csv?from&to[&organizationId]: invoices and credit notes for the tax
    report (``services.billing.invoice_exports``), with the same rules as the payments export."""
    start, end, scope = await export_scope(request, from_, to, organization_id)
    rows = stream_tax_rows(app_db(request), organization_id=scope, start=start, end=end)
    return csv_stream(csv_chunks(rows, TAX_COLUMNS, TAX_TEXT_COLUMNS), f"invoices-{start}-to-{end}.csv")
