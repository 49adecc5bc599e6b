"""GET /invoices/{id}.pdf (and seed 003's /invoices/{id}/pdf): an invoice as a PDF, authorized like GraphQL,
in the organization's language (BillingDetails.language), its dates in BILLING_TIMEZONE."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from billing_graphql.domain.errors import BillingError
from billing_graphql.http.access import app_db, app_settings, organization_scope, request_now, require_actor
from billing_graphql.services.billing.invoice_documents import InvoiceDocument, load_invoice_document, render_invoice_pdf

PDF_CACHE_CONTROL = "private, max-age=3600"
NOT_FOUND = "Invoice not found."


def parse_pdf_name(filename: str, *, nested: bool = False) -> uuid.UUID:
    """The invoice id of '<uuid>.pdf', or of '<uuid>' under ``/invoices/<uuid>/pdf`` (``nested``);
    anything else is 404."""
    stem, dot, suffix = (filename, ".", "pdf") if nested else filename.rpartition(".")
    if not dot or suffix != "pdf":
        raise NotFoundException(detail=NOT_FOUND)
    try:
        return uuid.UUID(stem)
    except ValueError:
        raise NotFoundException(detail=NOT_FOUND) from None


async def pdf_response(request: Request[Any, Any, Any], document: InvoiceDocument) -> Response[bytes]:
    settings = app_settings(request)
    content = await asyncio.to_thread(
        render_invoice_pdf, document, seller_name=settings.seller_name, seller_address=settings.seller_address,
        seller_tax_id=settings.seller_tax_id, timezone=settings.timezone,
    )
    name = document.invoice.number or f"draft-{document.invoice.id}"
    return Response(
        content=content,
        media_type="application/pdf",
        headers={
            "Cache-Control": PDF_CACHE_CONTROL,
            "Content-Disposition": f'inline; filename="{name}.pdf"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@get(["/invoices/{filename:str}", "/invoices/{filename:str}/pdf"], name="invoice_pdf")
async def invoice_pdf(request: Request[Any, Any, Any], filename: str) -> Response[bytes]:
    now = await request_now(request)
    actor = await require_actor(request, now)
    invoice_id = parse_pdf_name(filename, nested=request.url.path.endswith("/pdf"))
    try:
        document = await load_invoice_document(
            app_db(request), invoice_id=invoice_id, organization_id=organization_scope(actor)
        )
    except BillingError:
        raise NotFoundException(detail=NOT_FOUND) from None
    return await pdf_response(request, document)
