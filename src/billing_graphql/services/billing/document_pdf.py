"""The parts every billing document's PDF is made of (reportlab), in the organization's language.

An invoice (``invoice_documents.render_invoice_pdf``) and a credit note are built from the same
parts: the seller and buyer block with their NPWP, a key/value table of numbers and dates, the
lines table, the tax rows (the base named as Indonesian invoices name it: "DPP Nilai Lain 11/12"
for PPN, then "PPN 12%"), the totals table, and ``build_pdf``. Words come from ``LABELS`` (English
and Indonesian, ``label``); money and dates from ``domain.language`` (Babel), so ``Rp 1.663.890``
in Indonesian and ``Rp 1,663,890`` in English.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from babel import Locale
from babel.numbers import format_decimal
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing_graphql.domain.language import DEFAULT_LANGUAGE, Language, format_amount, format_day, format_money
from billing_graphql.domain.tax import tax_base

if TYPE_CHECKING:
    from billing_graphql.settings import Settings

# (English, Indonesian) for each word a document prints. A document type adds its own keys here.
LABELS: dict[str, tuple[str, str]] = {
    "invoice": ("Invoice", "Faktur"),
    "draft": ("DRAFT", "DRAF"),
    "status": ("Status", "Status"),
    "seller": ("From", "Penjual"),
    "buyer": ("Bill to", "Pembeli"),
    "invoice_number": ("Invoice number", "Nomor faktur"),
    "issued": ("Issued", "Tanggal terbit"),
    "due": ("Due", "Jatuh tempo"),
    "period": ("Period", "Periode"),
    "paid_on": ("Paid", "Tanggal bayar"),
    "description": ("Description", "Uraian"),
    "quantity": ("Qty", "Jml"),
    "unit_price": ("Unit price", "Harga satuan"),
    "amount": ("Amount", "Jumlah"),
    "subtotal": ("Subtotal", "Subtotal"),
    "discount": ("Discount", "Potongan harga"),
    "selling_price": ("Price after discount", "Harga Jual/Penggantian"),
    "tax_base": ("Tax base", "DPP"),
    "tax_base_other": ("Tax base ({name})", "{name}"),
    "tax": ("Tax", "Pajak"),
    "total": ("Total", "Total"),
    "credit_applied": ("Credit applied", "Saldo kredit dipakai"),
    "amount_paid": ("Amount paid", "Telah dibayar"),
    "amount_refunded": ("Amount refunded", "Telah dikembalikan"),
    "amount_credited": ("Credited (credit notes)", "Dikreditkan (nota kredit)"),
    "amount_due": ("Amount due", "Sisa tagihan"),
    "amounts_in": ("Amounts in {currency}.", "Jumlah dalam {currency}."),
    "seller_tax_id": ("Tax ID (NPWP): {tax_id}", "NPWP: {tax_id}"),
    "buyer_npwp": ("NPWP: {tax_id}", "NPWP: {tax_id}"),
    "buyer_tax_id": ("Tax ID: {tax_id}", "Nomor pajak: {tax_id}"),
    "to": ("to", "s.d."),
    # credit notes
    "credit_note": ("Credit note", "Nota kredit"),
    "credit_note_number": ("Credit note number", "Nomor nota kredit"),
    "corrects_invoice": ("Corrects invoice", "Membetulkan faktur"),
    "invoice_of": ("{number} of {day}", "{number} tanggal {day}"),
    "invoice_total": ("Invoice total", "Total faktur"),
    "reason": ("Reason", "Alasan"),
    "amount_tax_included": ("Amount (tax included)", "Jumlah (termasuk pajak)"),
    "net_credited": ("Net amount credited", "Jumlah bersih dikreditkan"),
    "tax_reversed": ("{tax} reversed", "{tax} dikoreksi"),
    "total_credited": ("Total credited", "Total dikreditkan"),
    "memo": ("Memo: {memo}", "Catatan: {memo}"),
    "outcome_REFUND": ("Refunded to the original payment method", "Dikembalikan ke metode pembayaran semula"),
    "outcome_CREDIT_BALANCE": ("Added to the account balance", "Ditambahkan ke saldo akun"),
    "outcome_REDUCE_AMOUNT_DUE": ("Taken off the invoice's amount due", "Mengurangi sisa tagihan faktur"),
    "reason_DUPLICATE": ("Duplicate", "Duplikat"),
    "reason_FRAUDULENT": ("Fraudulent", "Penipuan"),
    "reason_ORDER_CHANGE": ("Order change", "Perubahan pesanan"),
    "reason_PRODUCT_UNSATISFACTORY": ("Product unsatisfactory", "Produk tidak memuaskan"),
    "reason_OTHER": ("Other", "Lainnya"),
}

# Statuses as a reader says them; one not listed prints as its code.
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "DRAFT": ("Draft", "Draf"),
    "OPEN": ("Open", "Belum dibayar"),
    "PAID": ("Paid", "Lunas"),
    "PARTIALLY_REFUNDED": ("Partially refunded", "Dikembalikan sebagian"),
    "REFUNDED": ("Refunded", "Dikembalikan"),
    "VOID": ("Void", "Dibatalkan"),
    "ISSUED": ("Issued", "Terbit"),
    "UNCOLLECTIBLE": ("Uncollectible", "Tidak tertagih"),
}


def label(key: str, language: Language = DEFAULT_LANGUAGE, labels: dict[str, tuple[str, str]] = LABELS,
          **values: object) -> str:
    english, indonesian = labels[key]
    text = indonesian if language is Language.ID else english
    return text.format(**values) if values else text


def status_label(status: str, language: Language = DEFAULT_LANGUAGE) -> str:
    names = STATUS_LABELS.get(status)
    return label(status, language, STATUS_LABELS) if names else status


@dataclass(frozen=True, slots=True)
class Seller:
    """Who issues the documents (BILLING_SELLER_NAME, _ADDRESS, _TAX_ID)."""

    name: str
    address: str = ""
    tax_id: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Seller:
        return cls(settings.seller_name, settings.seller_address, settings.seller_tax_id)

    def text(self, language: Language = DEFAULT_LANGUAGE) -> str:
        parts = [self.name] + ([self.address] if self.address else [])
        if self.tax_id:
            parts.append(label("seller_tax_id", language, tax_id=self.tax_id))
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Buyer:
    """Who a document is addressed to: the legal name (else the organization's name), address,
    country and tax ID copied at finalization, and the billing e-mail."""

    name: str
    address: str | None = None
    country: str | None = None
    tax_id: str | None = None
    email: str | None = None

    def text(self, language: Language = DEFAULT_LANGUAGE) -> str:
        parts = [self.name] + [part for part in (self.address, country_name(self.country, language)) if part]
        if self.tax_id:
            key = "buyer_npwp" if self.country in ("ID", None) else "buyer_tax_id"
            parts.append(label(key, language, tax_id=self.tax_id))
        if self.email:
            parts.append(self.email)
        return "\n".join(parts)


# -- text ------------------------------------------------------------------------------------


def country_name(code: str | None, language: Language = DEFAULT_LANGUAGE) -> str | None:
    """ID -> Indonesia; SG -> Singapore (en) / Singapura (id); an unknown code as it is."""
    if not code:
        return None
    return Locale.parse(language.locale).territories.get(code, code)


def money_text(minor: int, currency: str, language: Language = DEFAULT_LANGUAGE) -> str:
    """Money as text the PDF's standard fonts can draw (the code where a symbol is outside them)."""
    text = format_money(minor, currency, language)
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        text = f"{'-' if minor < 0 else ''}{currency} {format_amount(minor, currency, language)}"
    return text


def rate_text(rate: Decimal, language: Language = DEFAULT_LANGUAGE) -> str:
    """12% / 2.5% (en) / 2,5% (id)."""
    return format_decimal((rate * 100).normalize(), format="#,##0.###", locale=language.locale) + "%"


def day_text(value: datetime | None, language: Language = DEFAULT_LANGUAGE, timezone: tzinfo | None = None) -> str:
    return format_day(value, language, timezone=timezone)


def period_text(start: datetime | None, end: datetime | None, language: Language = DEFAULT_LANGUAGE,
                timezone: tzinfo | None = None) -> str:
    if start is None:
        return ""
    return (f"{format_day(start, language, timezone=timezone, month='short')} {label('to', language)} "
            f"{format_day(end, language, timezone=timezone, month='short')}")


def base_name(numerator: int, denominator: int, language: Language = DEFAULT_LANGUAGE) -> str:
    """The name of the tax base: "DPP Nilai Lain 11/12" where it is a share of the price (PMK
    131/2024), plain DPP ("Tax base") where it is the price itself."""
    if numerator == denominator:
        return label("tax_base", language)
    return label("tax_base_other", language, name=f"DPP Nilai Lain {numerator}/{denominator}")


def tax_rows(*, taxable: int, tax: int, currency: str, tax_name: str | None, tax_rate: Decimal | None,
             base_numerator: int, base_denominator: int, discounted: bool,
             language: Language = DEFAULT_LANGUAGE) -> list[list[str]]:
    """The rows between the subtotal and the total: the price after discount (when there was a
    discount), the tax base (DPP) and the tax on it. ``taxable`` is subtotal minus discount; the
    DPP printed is ``domain.tax.tax_base`` of it and ``tax`` is the document's own tax."""
    if tax_rate is None:
        return [[tax_name or label("tax", language), money_text(tax, currency, language)]]
    rows: list[list[str]] = []
    if discounted:
        rows.append([label("selling_price", language), money_text(taxable, currency, language)])
    rows.append([base_name(base_numerator, base_denominator, language),
                 money_text(tax_base(taxable, base_numerator, base_denominator), currency, language)])
    rows.append([f"{tax_name or label('tax', language)} {rate_text(tax_rate, language)}",
                 money_text(tax, currency, language)])
    return rows


# -- layout ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Styles:
    title: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    small: ParagraphStyle
    right: ParagraphStyle


def styles() -> Styles:
    sheet = getSampleStyleSheet()
    body = sheet["BodyText"]
    return Styles(title=sheet["Title"], heading=sheet["Heading4"], body=body,
                  small=ParagraphStyle("small", parent=body, fontSize=8, leading=10),
                  right=ParagraphStyle("right", parent=body, alignment=2))


def paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def parties_table(seller: Seller, buyer: Buyer, language: Language, style: Styles) -> Table:
    table = Table(
        [
            [paragraph(label("seller", language), style.heading), paragraph(label("buyer", language), style.heading)],
            [paragraph(seller.text(language), style.body), paragraph(buyer.text(language), style.body)],
        ],
        colWidths=["50%", "50%"],
    )
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def facts_table(rows: list[list[str]]) -> Table:
    """Key/value rows (number, dates)."""
    return Table(rows, colWidths=[40 * mm, None], hAlign="LEFT")


INVOICE_COLUMNS = (("description", None), ("period", 46 * mm), ("quantity", 10 * mm), ("unit_price", 30 * mm),
                   ("amount", 30 * mm))


def lines_table(rows: list[list], language: Language, columns: tuple = INVOICE_COLUMNS, *,
                right_from: int = 2) -> Table:
    """``rows`` under ``columns`` ((label key, width) each; by default an invoice's: description
    Paragraph, period Paragraph, quantity, unit price, amount), right-aligned from ``right_from``."""
    header = [label(key, language) for key, _ in columns]
    table = Table([header, *rows], colWidths=[width for _, width in columns], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (right_from, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    return table


def totals_table(rows: list[list[str]], *, bold_row: int) -> Table:
    table = Table(rows, colWidths=[110 * mm, 40 * mm], hAlign="RIGHT")
    table.setStyle(TableStyle([
        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ("FONTNAME", (0, bold_row), (-1, bold_row), "Helvetica-Bold"),
        ("LINEABOVE", (0, bold_row), (-1, bold_row), 0.5, colors.black),
    ]))
    return table


def heading(title: str, status: str, style: Styles) -> list[Flowable]:
    return [paragraph(title, style.title), paragraph(status, style.right), Spacer(1, 4 * mm)]


def build_pdf(story: list[Flowable], *, title: str, author: str, subject: str) -> bytes:
    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=title, author=author, subject=subject)
    pdf.build(story)
    return buffer.getvalue()
