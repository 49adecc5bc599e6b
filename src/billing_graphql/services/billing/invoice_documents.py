"""Invoice documents: loading what an invoice shows, and rendering it as a PDF (reportlab).

The PDF shows the seller (settings), the buyer (the organization), the number, the dates,
the lines, the discount, the tax (name, rate and the base it applies to), the total, what
was paid and refunded, the amount due, and the status.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, InvoiceLine, InvoiceParties, Organization
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.money import Money, exponent, round_minor

@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    invoice: Invoice
    lines: list[InvoiceLine]
    buyer_name: str
    buyer_email: str | None
    buyer: InvoiceParties | None = None  # billing details copied at finalization


def invoice_pdf_path(invoice_id: uuid.UUID) -> str:
    """Where the PDF is served (``pdfUrl`` is the public URL followed by this)."""
    return f"/invoices/{invoice_id}.pdf"


async def load_invoice_document(
    db: Database, *, invoice_id: uuid.UUID, organization_id: uuid.UUID | None
) -> InvoiceDocument:
    """The invoice with its lines and buyer. ``organization_id`` None means any organization
    (super-admins); another organization's invoice is NOT_FOUND, as a missing one."""
    async with db.read() as session:
        statement = select(Invoice, Organization.name, Organization.billing_email, InvoiceParties).join(
            Organization, Organization.id == Invoice.organization_id
        ).outerjoin(InvoiceParties, InvoiceParties.invoice_id == Invoice.id).where(Invoice.id == invoice_id)
        if organization_id is not None:
            statement = statement.where(Invoice.organization_id == organization_id)
        row = (await session.execute(statement)).first()
        if row is None:
            raise not_found("Invoice")
        invoice, buyer_name, buyer_email, buyer = row
        lines = list(
            (
                await session.scalars(
                    select(InvoiceLine)
                    .where(InvoiceLine.invoice_id == invoice.id)
                    .order_by(InvoiceLine.position, InvoiceLine.id)
                )
            ).all()
        )
    return InvoiceDocument(invoice=invoice, lines=lines, buyer_name=buyer_name, buyer_email=buyer_email, buyer=buyer)


# -- rendering ------------------------------------------------------------------------------


def money_text(minor: int, currency: str) -> str:
    """Money as text the PDF's standard fonts can draw (the code where a symbol is outside them)."""
    text = Money(minor, currency).format()
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        places = exponent(currency)
        amount = Money(minor, currency).amount
        sign = "-" if amount < 0 else ""
        text = f"{sign}{currency} {abs(amount):,.{places}f}"
    return text


def rate_text(rate: Decimal) -> str:
    percent = (rate * 100).normalize()
    return f"{percent:f}%"


def tax_base_minor(invoice: Invoice) -> int:
    """The amount the tax rate applies to: (subtotal - discount) x base factor, rounded once."""
    taxable = Decimal(invoice.subtotal - invoice.discount)
    return round_minor(taxable * invoice.tax_base_numerator / invoice.tax_base_denominator)


def tax_line_text(invoice: Invoice) -> str:
    name = invoice.tax_name or "Tax"
    if invoice.tax_rate is None:
        return name
    text = f"{name} {rate_text(invoice.tax_rate)} of {money_text(tax_base_minor(invoice), invoice.currency)}"
    if invoice.tax_base_numerator != invoice.tax_base_denominator:
        taxable = money_text(invoice.subtotal - invoice.discount, invoice.currency)
        text += f" (base {invoice.tax_base_numerator}/{invoice.tax_base_denominator} of {taxable})"
    return text


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def buyer_text(document: InvoiceDocument) -> str:
    """The "Bill to" block: the legal name, address, country and tax ID copied at finalization."""
    buyer = document.buyer
    parts = [(buyer.buyer_legal_name if buyer and buyer.buyer_legal_name else document.buyer_name)]
    if buyer is not None:
        parts += [part for part in (buyer.buyer_address, buyer.buyer_country) if part]
        if buyer.buyer_tax_id:
            label = "NPWP" if buyer.buyer_country == "ID" else "Tax ID"
            parts.append(f"{label}: {buyer.buyer_tax_id}")
    if document.buyer_email:
        parts.append(document.buyer_email)
    return "\n".join(parts)


def seller_text(seller_name: str, seller_address: str, seller_tax_id: str) -> str:
    parts = [seller_name] + ([seller_address] if seller_address else [])
    return "\n".join(parts + ([f"Tax ID (NPWP): {seller_tax_id}"] if seller_tax_id else []))


def render_invoice_pdf(document: InvoiceDocument, *, seller_name: str, seller_address: str,
                       seller_tax_id: str = "") -> bytes:
    invoice = document.invoice
    currency = invoice.currency
    number = invoice.number or "DRAFT"
    dates = [
        ["Invoice number", number],
        ["Issued", _date(invoice.finalized_at or invoice.created_at)],
        ["Due", _date(invoice.due_date)],
        ["Period", f"{_date(invoice.period_start)} to {_date(invoice.period_end)}" if invoice.period_start else "-"],
    ]
    if invoice.paid_at:
        dates.append(["Paid", _date(invoice.paid_at)])
    rows: list[list] = [["Description", "Period", "Qty", "Unit price", "Amount"]]
    for line in document.lines:
        period = f"{_date(line.period_start)} to {_date(line.period_end)}" if line.period_start else ""
        rows.append([line.description, (period,), f"{line.quantity.normalize():f}",
                     money_text(round_minor(line.unit_amount), currency), money_text(line.amount, currency)])
    totals: list[list[str]] = [["Subtotal", money_text(invoice.subtotal, currency)]]
    if invoice.discount:
        totals.append(["Discount", money_text(-invoice.discount, currency)])
    totals.append([tax_line_text(invoice), money_text(invoice.tax, currency)])
    totals.append(["Total", money_text(invoice.total, currency)])
    if invoice.credit_applied:
        totals.append(["Credit applied", money_text(-invoice.credit_applied, currency)])
    totals.append(["Amount paid", money_text(invoice.amount_paid, currency)])
    if invoice.amount_refunded:
        totals.append(["Amount refunded", money_text(invoice.amount_refunded, currency)])
    if invoice.amount_credited:
        totals.append(["Credited (credit notes)", money_text(invoice.amount_credited, currency)])
    amount_due = invoice.total - invoice.credit_applied - invoice.amount_paid - (invoice.credited_against_due or 0)
    totals.append(["Amount due", money_text(amount_due, currency)])
    return render_pdf(PdfPage(
        title=f"Invoice {number}", subject=f"Invoice {number} for {document.buyer_name}",
        status=invoice.status.value, seller=seller_text(seller_name, seller_address, seller_tax_id),
        buyer=buyer_text(document), dates=dates, rows=rows,
        widths=[None, 38 * mm, 14 * mm, 30 * mm, 30 * mm], totals=totals, currency=currency), author=seller_name)


@dataclass(frozen=True, slots=True)
class PdfPage:
    """What a billing document shows: the heading, the parties, dates, a table of lines (a cell
    given as a 1-tuple is set small), totals (the row labelled ``total_label`` in bold) and notes."""

    title: str
    subject: str
    status: str
    seller: str
    buyer: str
    dates: list[list[str]]
    rows: list[list]
    widths: list
    totals: list[list[str]]
    currency: str
    total_label: str = "Total"
    notes: tuple[str, ...] = ()


def render_pdf(page: PdfPage, *, author: str) -> bytes:
    """A billing document (invoice, credit note) as an A4 PDF (reportlab)."""
    styles = getSampleStyleSheet()
    body = styles["BodyText"]
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10)
    right = ParagraphStyle("right", parent=body, alignment=2)
    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=page.title, author=author, subject=page.subject)
    story: list = [_p(page.title, styles["Title"]), _p(f"Status: {page.status}", right), Spacer(1, 4 * mm)]
    parties = Table(
        [
            [_p("From", styles["Heading4"]), _p("Bill to", styles["Heading4"])],
            [_p(page.seller, body), _p(page.buyer, body)],
        ],
        colWidths=["50%", "50%"],
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [parties, Spacer(1, 4 * mm)]
    story += [Table(page.dates, colWidths=[40 * mm, None], hAlign="LEFT"), Spacer(1, 6 * mm)]

    rows = [page.rows[0]] + [
        [_p(cell[0], small) if isinstance(cell, tuple) else (_p(cell, body) if index == 0 else cell)
         for index, cell in enumerate(row)]
        for row in page.rows[1:]
    ]
    lines_table = Table(rows, colWidths=page.widths, repeatRows=1)
    lines_table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("ALIGN", (len(page.widths) - 3 if len(page.widths) > 3 else 1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [lines_table, Spacer(1, 6 * mm)]
    totals_table = Table(page.totals, colWidths=[110 * mm, 40 * mm], hAlign="RIGHT")
    total_row = next(index for index, row in enumerate(page.totals) if row[0] == page.total_label)
    totals_table.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, total_row), (-1, total_row), "Helvetica-Bold"),
                ("LINEABOVE", (0, total_row), (-1, total_row), 0.5, colors.black),
            ]
        )
    )
    story += [totals_table, Spacer(1, 8 * mm)]
    story += [_p(note, small) for note in page.notes]
    story.append(_p(f"Amounts in {page.currency}.", small))
    pdf.build(story)
    return buffer.getvalue()
