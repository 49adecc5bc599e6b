"""Invoice documents: loading what an invoice shows, and rendering it as a PDF (reportlab).

The PDF is in the organization's language (``BillingDetails.language``: English or Indonesian)
and shows the seller (settings, with its NPWP), the buyer (the billing details copied at
finalization, with its NPWP), the number, the dates (in BILLING_TIMEZONE), the lines, the
discount, the tax base as Indonesian invoices name it ("DPP Nilai Lain 11/12") and the tax on
it ("PPN 12%"), the total, what was paid and refunded, the amount due, and the status. The
parts are ``document_pdf``'s, shared with the other documents.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import tzinfo

from reportlab.lib.units import mm
from reportlab.platypus import Spacer
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingDetails, Invoice, InvoiceLine, InvoiceParties, Organization
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.language import DEFAULT_LANGUAGE, Language, language_of
from billing_graphql.domain.money import round_minor
from billing_graphql.domain.tax import tax_base
from billing_graphql.services.billing.document_pdf import (
    Buyer,
    Seller,
    build_pdf,
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
    totals_table,
)

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
        statement = (
            select(Invoice, Organization.name, Organization.billing_email, InvoiceParties, BillingDetails.language)
            .join(Organization, Organization.id == Invoice.organization_id)
            .outerjoin(InvoiceParties, InvoiceParties.invoice_id == Invoice.id)
            .outerjoin(BillingDetails, BillingDetails.organization_id == Invoice.organization_id)
            .where(Invoice.id == invoice_id)
        )
        if organization_id is not None:
            statement = statement.where(Invoice.organization_id == organization_id)
        row = (await session.execute(statement)).first()
        if row is None:
            raise not_found("Invoice")
        invoice, buyer_name, buyer_email, buyer, language = row
        lines = list(
            (
                await session.scalars(
                    select(InvoiceLine)
                    .where(InvoiceLine.invoice_id == invoice.id)
                    .order_by(InvoiceLine.position, InvoiceLine.id)
                )
            ).all()
        )
    return InvoiceDocument(invoice=invoice, lines=lines, buyer_name=buyer_name, buyer_email=buyer_email, buyer=buyer,
                           language=language_of(language))


# -- rendering ------------------------------------------------------------------------------


def tax_base_minor(invoice: Invoice) -> int:
    """The amount the tax rate applies to (the DPP): (subtotal - discount) x base factor, rounded once."""
    return tax_base(invoice.subtotal - invoice.discount, invoice.tax_base_numerator, invoice.tax_base_denominator)


def invoice_buyer(document: InvoiceDocument) -> Buyer:
    """The "Bill to" block: the legal name, address, country and tax ID copied at finalization."""
    copy = document.buyer
    if copy is None:
        return Buyer(document.buyer_name, email=document.buyer_email)
    return Buyer(copy.buyer_legal_name or document.buyer_name, copy.buyer_address, copy.buyer_country,
                 copy.buyer_tax_id, document.buyer_email)


def buyer_text(document: InvoiceDocument, language: Language = DEFAULT_LANGUAGE) -> str:
    return invoice_buyer(document).text(language)


def seller_text(seller_name: str, seller_address: str, seller_tax_id: str,
                language: Language = DEFAULT_LANGUAGE) -> str:
    return Seller(seller_name, seller_address, seller_tax_id).text(language)


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
    story += [parties_table(Seller(seller_name, seller_address, seller_tax_id), invoice_buyer(document), language,
                            style), Spacer(1, 4 * mm)]
    facts = [
        [label("invoice_number", language), number],
        [label("issued", language), day(invoice.finalized_at or invoice.created_at)],
        [label("due", language), day(invoice.due_date)],
        [label("period", language), period_text(invoice.period_start, invoice.period_end, language, timezone) or "-"],
    ]
    if invoice.paid_at:
        facts.append([label("paid_on", language), day(invoice.paid_at)])
    story += [facts_table(facts), Spacer(1, 6 * mm)]

    rows = [
        [
            paragraph(line.description, style.body),
            paragraph(period_text(line.period_start, line.period_end, language, timezone), style.small),
            f"{line.quantity.normalize():f}",
            money(round_minor(line.unit_amount)),
            money(line.amount),
        ]
        for line in document.lines
    ]
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
    amount_due = invoice.total - invoice.credit_applied - invoice.amount_paid - invoice.credited_against_due
    totals.append([label("amount_due", language), money(amount_due)])
    story += [totals_table(totals, bold_row=total_row), Spacer(1, 8 * mm),
              paragraph(label("amounts_in", language, currency=currency), style.small)]
    return build_pdf(story, title=title, author=seller_name, subject=f"{title} - {document.buyer_name}")
