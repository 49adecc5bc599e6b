"""Invoice documents: loading what an invoice shows, and rendering it as a PDF (reportlab).

The PDF is in the organization's language (``BillingDetails.language``: English or Indonesian)
and shows the seller (settings, with its NPWP), the buyer (the billing details copied at
finalization, with its NPWP), the number, the dates (in BILLING_TIMEZONE), the lines (a USAGE
line followed by the tiers that priced it), the discount, the tax base as Indonesian invoices name it ("DPP Nilai Lain 11/12") and the tax on
it ("PPN 12%"), the total, what was paid and refunded, the amount due, and the status. The
parts are ``document_pdf``'s, shared with the other documents.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal

from reportlab.lib.units import mm
from reportlab.platypus import Spacer
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, InvoiceLine, InvoiceParties
from billing_graphql.domain.invoices import amount_due
from billing_graphql.domain.language import DEFAULT_LANGUAGE, Language
from billing_graphql.domain.line_text import line_text
from billing_graphql.domain.money import round_minor
from billing_graphql.services.billing.document_pdf import (
    Buyer,
    Seller,
    build_pdf,
    exact_money_text,
    day_text,
    facts_table,
    heading,
    label,
    lines_table,
    money_text,
    paragraph,
    parties_table,
    period_text,
    status_label,
    styles,
    tax_rows,
    tier_text,
    totals_table,
)
from billing_graphql.services.billing.document_buyers import load_with_buyer

@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    invoice: Invoice
    lines: list[InvoiceLine]
    buyer_name: str
    buyer_email: str | None
    buyer: InvoiceParties | None = None  # billing details copied at finalization
    language: Language = DEFAULT_LANGUAGE  # the organization's (BillingDetails.language)


def invoice_pdf_path(invoice_id: uuid.UUID) -> str:
    """Where the PDF is served (``pdfUrl`` is the public URL followed by this)."""
    return f"/invoices/{invoice_id}.pdf"


async def load_invoice_document(
    db: Database, *, invoice_id: uuid.UUID, organization_id: uuid.UUID | None
) -> InvoiceDocument:
    """The invoice with its lines and buyer. ``organization_id`` None means any organization
    (super-admins); another organization's invoice is NOT_FOUND, as a missing one."""
    async with db.read() as session:
        (invoice,), buyer = await load_with_buyer(
            session, select(Invoice).where(Invoice.id == invoice_id), invoice_id=Invoice.id,
            organization_id=Invoice.organization_id, scope=organization_id, missing="Invoice")
        lines = list((await session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
            .order_by(InvoiceLine.position, InvoiceLine.id))).all())
    return InvoiceDocument(invoice=invoice, lines=lines, buyer_name=buyer.name, buyer_email=buyer.email,
                           buyer=buyer.parties, language=buyer.language)


# -- rendering ------------------------------------------------------------------------------


def render_invoice_pdf(document: InvoiceDocument, *, seller_name: str, seller_address: str,
                       seller_tax_id: str = "", language: Language | None = None,
                       timezone: tzinfo | None = None) -> bytes:
    """The invoice as a PDF in ``language`` (default: the organization's, ``document.language``),
    its dates as days in ``timezone`` (default UTC; the route passes BILLING_TIMEZONE)."""
    language = language or document.language
    invoice = document.invoice
    currency = invoice.currency
    number = invoice.number or label("draft", language)
    style = styles()

    def money(minor: int) -> str:
        return money_text(minor, currency, language)

    def day(value) -> str:
        return day_text(value, language, timezone)

    title = f"{label('invoice', language)} {number}"
    story = heading(title, f"{label('status', language)}: {status_label(invoice.status.value, language)}", style)
    buyer = Buyer.copied(document.buyer, document.buyer_name, document.buyer_email)
    story += [parties_table(Seller(seller_name, seller_address, seller_tax_id), buyer, language, style),
              Spacer(1, 4 * mm)]
    facts = [
        [label("invoice_number", language), number],
        [label("issued", language), day(invoice.finalized_at or invoice.created_at)],
        [label("due", language), day(invoice.due_date)],
        [label("period", language), period_text(invoice.period_start, invoice.period_end, language, timezone) or "-"],
    ]
    if invoice.paid_at:
        facts.append([label("paid_on", language), day(invoice.paid_at)])
    story += [facts_table(facts), Spacer(1, 6 * mm)]

    rows: list[list] = []
    for line in document.lines:
        rows.append([
            paragraph(line_text(line.description, line.detail, language), style.body),
            paragraph(period_text(line.period_start, line.period_end, language, timezone), style.small),
            f"{line.quantity.normalize():f}",
            money(round_minor(line.unit_amount)),
            money(line.amount),
        ])
        for tier in line.tier_breakdown or ():  # a USAGE line's tiers, each under it
            rows.append(["", paragraph(tier_text(tier, currency, language), style.small), f"{tier['units']}",
                         exact_money_text(Decimal(tier["unit_amount"]), currency, language),
                         exact_money_text(Decimal(tier["amount"]), currency, language)])
    story += [lines_table(rows, language), Spacer(1, 6 * mm)]

    totals: list[list[str]] = [[label("subtotal", language), money(invoice.subtotal)]]
    if invoice.discount:
        totals.append([label("discount", language), money(-invoice.discount)])
    totals += tax_rows(taxable=invoice.subtotal - invoice.discount, tax=invoice.tax, currency=currency,
                       tax_name=invoice.tax_name, tax_rate=invoice.tax_rate,
                       base_numerator=invoice.tax_base_numerator, base_denominator=invoice.tax_base_denominator,
                       discounted=bool(invoice.discount), language=language)
    total_row = len(totals)
    totals.append([label("total", language), money(invoice.total)])
    if invoice.credit_applied:
        totals.append([label("credit_applied", language), money(-invoice.credit_applied)])
    totals.append([label("amount_paid", language), money(invoice.amount_paid)])
    if invoice.amount_refunded:
        totals.append([label("amount_refunded", language), money(invoice.amount_refunded)])
    if invoice.amount_credited:
        totals.append([label("amount_credited", language), money(invoice.amount_credited)])
    totals.append([label("amount_due", language), money(amount_due(invoice))])
    story += [totals_table(totals, bold_row=total_row), Spacer(1, 8 * mm),
              paragraph(label("amounts_in", language, currency=currency), style.small)]
    return build_pdf(story, title=title, author=seller_name, subject=f"{title} - {document.buyer_name}")
