"""GET /invoices/{id}.pdf (and seed 003's /invoices/{id}/pdf): an invoice as a PDF, authorized like GraphQL,
in the organization's language (BillingDetails.language), its dates in BILLING_TIMEZONE."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from billing_graphql.domain.errors import BillingError
from billing_graphql.http.access import app_db, app_settings, organization_scope, request_now, require_actor
from billing_graphql.services.billing.credit_note_documents import load_credit_note_document, render_credit_note_pdf
from billing_graphql.services.billing.invoice_documents import InvoiceDocument, load_invoice_document, render_invoice_pdf

PDF_CACHE_CONTROL = "private, max-age=3600"
NOT_FOUND = "Invoice not found."
CREDIT_NOTE_NOT_FOUND = "Credit note not found."


def parse_pdf_name(filename: str, *, nested: bool = False, not_found: str = NOT_FOUND) -> uuid.UUID:
    """The invoice id of '<uuid>.pdf', or of '<uuid>' under ``/invoices/<uuid>/pdf`` (``nested``);
    anything else is 404."""
    stem, dot, suffix = (filename, ".", "pdf") if nested else filename.rpartition(".")
    if not dot or suffix != "pdf":
        raise NotFoundException(detail=not_found)
    try:
        return uuid.UUID(stem)
    except ValueError:
        raise NotFoundException(detail=not_found) from None


async def pdf_response(request: Request[Any, Any, Any], document: InvoiceDocument) -> Response[bytes]:
    name = document.invoice.number or f"draft-{document.invoice.id}"
    return await rendered_pdf(request, render_invoice_pdf, document, name)


async def rendered_pdf(request: Request[Any, Any, Any], render: Callable[..., bytes], document: Any,
                       name: str) -> Response[bytes]:
    """``render(document, seller...)`` off the event loop, served with the PDF headers (private cache)."""
    settings = app_settings(request)
    content = await asyncio.to_thread(
        render, document, seller_name=settings.seller_name, seller_address=settings.seller_address,
        seller_tax_id=settings.seller_tax_id, timezone=settings.timezone,
    )
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


@get("/credit-notes/{filename:str}", name="credit_note_pdf")
async def credit_note_pdf(request: Request[Any, Any, Any], filename: str) -> Response[bytes]:
    """GET /credit-notes/{id}.pdf: the same access rules and headers as an invoice's PDF."""
    now = await request_now(request)
    actor = await require_actor(request, now)
    credit_note_id = parse_pdf_name(filename, not_found=CREDIT_NOTE_NOT_FOUND)
    try:
        document = await load_credit_note_document(
            app_db(request), credit_note_id=credit_note_id, organization_id=organization_scope(actor)
        )
    except BillingError:
        raise NotFoundException(detail=CREDIT_NOTE_NOT_FOUND) from None
    return await rendered_pdf(request, render_credit_note_pdf, document, document.number)
