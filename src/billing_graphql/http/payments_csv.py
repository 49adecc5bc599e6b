"""GET /payments/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD[&organizationId=...]

One row per payment and per refund created in the range (UTC days, both included), oldest
first; amounts in major units as exact decimal strings (refunds negative); RFC 4180 quoting
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
from billing_graphql.http.access import app_db, request_now, require_actor
from billing_graphql.services.payments.exports import COLUMNS, ExportRow, stream_payment_rows

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = frozenset({"organization", "organization_external_id", "gateway_reference", "description",
                           "usage_lines"})
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


def _safe(column: str, value: str) -> str:
    if column in _TEXT_COLUMNS and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def row_values(row: ExportRow) -> tuple:
    return tuple(_safe(column, value) for column, value in zip(COLUMNS, row.values(), strict=True))


async def _chunks(rows: AsyncIterator[ExportRow]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    async for row in rows:
        writer.writerow(row_values(row))
        count += 1
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@get("/payments/export.csv", name="payments_csv")
async def payments_csv(
    request: Request[Any, Any, Any],
    from_: str | None = Parameter(query="from", default=None, required=False),
    to: str | None = Parameter(query="to", default=None, required=False),
    organization_id: str | None = Parameter(query="organizationId", default=None, required=False),
) -> Stream:
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
    rows = stream_payment_rows(app_db(request), organization_id=scope, start=start, end=end)
    return Stream(
        _chunks(rows),
        media_type="text/csv",  # Litestar adds "; charset=utf-8" to a text/ type
        headers={
            "Content-Disposition": f'attachment; filename="payments-{start}-to-{end}.csv"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
