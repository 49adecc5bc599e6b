"""Invoice documents: loading what an invoice shows, and rendering it as a PDF (reportlab).

The PDF shows the seller (settings), the buyer (the organization), the number, the dates,
the lines (a USAGE line followed by the tiers that priced it), the discount, the tax (name, rate and the base it applies to), the total, what
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


def exact_money_text(minor: Decimal, currency: str) -> str:
    """An exact amount of minor units (a tier's unit price may hold fractions of one)."""
    if minor == minor.to_integral_value():
        return money_text(int(minor), currency)
    return f"{currency} {minor.scaleb(-exponent(currency)).normalize():f}"


def tier_text(tier: dict, currency: str) -> str:
    """A tier of a USAGE line: "Units 1 to 4,000" / "Units 4,001 and above", with its flat amount."""
    span = (f"Units {tier['from_unit']:,} to {tier['to_unit']:,}" if tier["to_unit"] is not None
            else f"Units {tier['from_unit']:,} and above")
    flat = Decimal(tier["flat_amount"])
    return span + (f", flat {exact_money_text(flat, currency)}" if flat else "")


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
    styles = getSampleStyleSheet()
    body = styles["BodyText"]
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10)
    right = ParagraphStyle("right", parent=body, alignment=2)
    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Invoice {number}",
        author=seller_name,
        subject=f"Invoice {number} for {document.buyer_name}",
    )
    story: list = [
        _p(f"Invoice {number}", styles["Title"]),
        _p(f"Status: {invoice.status.value}", right),
        Spacer(1, 4 * mm),
    ]
    buyer = buyer_text(document)
    parties = Table(
        [
            [_p("From", styles["Heading4"]), _p("Bill to", styles["Heading4"])],
            [_p(seller_text(seller_name, seller_address, seller_tax_id), body), _p(buyer, body)],
        ],
        colWidths=["50%", "50%"],
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [parties, Spacer(1, 4 * mm)]
    dates = [
        ["Invoice number", number],
        ["Issued", _date(invoice.finalized_at or invoice.created_at)],
        ["Due", _date(invoice.due_date)],
        ["Period", f"{_date(invoice.period_start)} to {_date(invoice.period_end)}" if invoice.period_start else "-"],
    ]
    if invoice.paid_at:
        dates.append(["Paid", _date(invoice.paid_at)])
    story += [Table(dates, colWidths=[40 * mm, None], hAlign="LEFT"), Spacer(1, 6 * mm)]

    rows: list[list] = [["Description", "Period", "Qty", "Unit price", "Amount"]]
    for line in document.lines:
        period = f"{_date(line.period_start)} to {_date(line.period_end)}" if line.period_start else ""
        rows.append(
            [
                _p(line.description, body),
                _p(period, small),
                f"{line.quantity.normalize():f}",
                money_text(round_minor(line.unit_amount), currency),
                money_text(line.amount, currency),
            ]
        )
        for tier in line.tier_breakdown or ():  # a USAGE line's tiers, each under it
            rows.append(["", _p(tier_text(tier, currency), small), f"{tier['units']}",
                         exact_money_text(Decimal(tier["unit_amount"]), currency),
                         exact_money_text(Decimal(tier["amount"]), currency)])
    lines_table = Table(rows, colWidths=[None, 38 * mm, 14 * mm, 30 * mm, 30 * mm], repeatRows=1)
    lines_table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [lines_table, Spacer(1, 6 * mm)]

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
    amount_due = invoice.total - invoice.credit_applied - invoice.amount_paid
    totals.append(["Amount due", money_text(amount_due, currency)])
    totals_table = Table(totals, colWidths=[110 * mm, 40 * mm], hAlign="RIGHT")
    total_row = next(index for index, row in enumerate(totals) if row[0] == "Total")
    totals_table.setStyle(
        TableStyle(
            [
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("FONTNAME", (0, total_row), (-1, total_row), "Helvetica-Bold"),
                ("LINEABOVE", (0, total_row), (-1, total_row), 0.5, colors.black),
            ]
        )
    )
    story += [totals_table, Spacer(1, 8 * mm), _p(f"Amounts in {currency}.", small)]
    pdf.build(story)
    return buffer.getvalue()
