"""Credit note documents: what a credit note shows, rendered from the invoice's parts
(``document_pdf``) in the organization's language: the seller, the buyer (its billing details as copied on the
invoice it corrects, with the NPWP), the invoice corrected, the lines credited, the tax (PPN)
reversed on its base, and the total credited with where it went."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import tzinfo

from reportlab.lib.units import mm
from reportlab.platypus import Spacer
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceParties
from billing_graphql.domain.language import DEFAULT_LANGUAGE, Language
from billing_graphql.domain.line_text import line_text
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
    status_label,
    styles,
    tax_rows,
    totals_table,
)
from billing_graphql.services.billing.document_buyers import load_with_buyer

CREDIT_NOTE_COLUMNS = (("description", None), ("amount_tax_included", 45 * mm))


@dataclass(frozen=True, slots=True)
class CreditNoteDocument:
    note: CreditNote
    lines: list[CreditNoteLine]
    invoice: Invoice
    buyer_name: str
    buyer_email: str | None
    buyer: InvoiceParties | None = None  # the corrected invoice's billing details
    language: Language = DEFAULT_LANGUAGE  # the organization's (BillingDetails.language)
    # The structure of the invoice lines credited (invoice_lines.detail), by credit-note line id.
    line_details: dict[uuid.UUID, dict] = field(default_factory=dict)

    @property
    def number(self) -> str:
        return self.note.number


async def load_credit_note_document(db: Database, *, credit_note_id: uuid.UUID,
                                    organization_id: uuid.UUID | None) -> CreditNoteDocument:
    """The credit note with its lines, invoice and buyer; ``organization_id`` None means any
    organization (super-admins); another organization's note is NOT_FOUND, as a missing one."""
    async with db.read() as session:
        (note, invoice), buyer = await load_with_buyer(
            session, select(CreditNote, Invoice).join(Invoice, Invoice.id == CreditNote.invoice_id)
            .where(CreditNote.id == credit_note_id), invoice_id=Invoice.id,
            organization_id=CreditNote.organization_id, scope=organization_id, missing="Credit note")
        rows = (await session.execute(
            select(CreditNoteLine, InvoiceLine.detail)
            .outerjoin(InvoiceLine, InvoiceLine.id == CreditNoteLine.invoice_line_id)
            .where(CreditNoteLine.credit_note_id == note.id)
            .order_by(CreditNoteLine.position, CreditNoteLine.id))).all()
    return CreditNoteDocument(note=note, lines=[line for line, _ in rows], invoice=invoice, buyer_name=buyer.name,
                              buyer_email=buyer.email, buyer=buyer.parties, language=buyer.language,
                              line_details={line.id: detail for line, detail in rows if detail})


def line_description(line: CreditNoteLine, invoice: Invoice, language: Language,
                     detail: dict | None = None) -> str:
    """A line crediting an amount of the whole invoice says so in the document's language; a line
    crediting an invoice line says what that line billed, in the document's language where the
    invoice line has its structure (``detail``), else as the line's English description."""
    if line.invoice_line_id is None:
        return label("credit_on_invoice", language, number=invoice.number or "-")
    return line_text(line.description, detail, language)


def render_credit_note_pdf(document: CreditNoteDocument, *, seller_name: str, seller_address: str,
                           seller_tax_id: str = "", language: Language | None = None,
                           timezone: tzinfo | None = None) -> bytes:
    """The credit note as a PDF in ``language`` (default the organization's), days in ``timezone``:
    the invoice it corrects, the lines credited (tax included), the net, the tax base and the tax
    reversed as the invoice names them, the total credited and where it went."""
    language = language or document.language
    note, invoice, currency = document.note, document.invoice, document.note.currency
    style = styles()

    def money(minor: int) -> str:
        return money_text(minor, currency, language)

    def day(value) -> str:
        return day_text(value, language, timezone)

    title = f"{label('credit_note', language)} {note.number}"
    buyer = Buyer.copied(document.buyer, document.buyer_name, document.buyer_email)
    story = heading(title, f"{label('status', language)}: {status_label(note.status.value, language)}", style)
    story += [parties_table(Seller(seller_name, seller_address, seller_tax_id), buyer, language, style),
              Spacer(1, 4 * mm)]
    facts = [
        [label("credit_note_number", language), note.number],
        [label("issued", language), day(note.created_at)],
        [label("corrects_invoice", language),
         label("invoice_of", language, number=invoice.number or "-", day=day(invoice.finalized_at or invoice.created_at))],
        [label("invoice_total", language), money_text(invoice.total, invoice.currency, language)],
        [label("reason", language), label(f"reason_{note.reason.value}", language)],
    ]
    story += [facts_table(facts), Spacer(1, 6 * mm)]
    rows = [[paragraph(line_description(line, invoice, language, document.line_details.get(line.id)), style.body),
             money(line.amount)] for line in document.lines]
    story += [lines_table(rows, language, CREDIT_NOTE_COLUMNS, right_from=1), Spacer(1, 6 * mm)]
    totals = [[label("net_credited", language), money(note.subtotal)]]
    for name, amount in tax_rows(taxable=note.subtotal, tax=note.tax, currency=currency, tax_name=note.tax_name,
                                 tax_rate=note.tax_rate, base_numerator=note.tax_base_numerator,
                                 base_denominator=note.tax_base_denominator, discounted=False, language=language):
        totals.append([name, amount])
    totals[-1][0] = label("tax_reversed", language, tax=totals[-1][0])
    total_row = len(totals)
    totals.append([label("total_credited", language), money(note.total)])
    totals.append([label(f"outcome_{note.outcome.value}", language), money(note.total)])
    story += [totals_table(totals, bold_row=total_row), Spacer(1, 8 * mm)]
    if note.memo:
        story.append(paragraph(label("memo", language, memo=note.memo), style.small))
    story.append(paragraph(label("amounts_in", language, currency=currency), style.small))
    return build_pdf(story, title=title, author=seller_name, subject=f"{title} - {document.buyer_name}")
