"""Credit note documents: what a credit note shows, rendered like an invoice
(``invoice_documents.render_pdf``): the seller, the buyer (its billing details as copied on the
invoice it corrects, with the NPWP), the invoice corrected, the lines credited, the tax (PPN)
reversed on its base, and the total credited with where it went."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from reportlab.lib.units import mm
from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import CreditNote, CreditNoteLine, Invoice, InvoiceParties, Organization
from billing_graphql.domain.credit_notes import CreditNoteOutcome
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.money import round_minor
from billing_graphql.services.billing.invoice_documents import (
    PdfPage,
    _date,
    buyer_text,
    money_text,
    rate_text,
    render_pdf,
    seller_text,
)

_OUTCOME_TEXT = {
    CreditNoteOutcome.REFUND: "Refunded to the original payment method",
    CreditNoteOutcome.CREDIT_BALANCE: "Added to the account balance",
    CreditNoteOutcome.REDUCE_AMOUNT_DUE: "Taken off the invoice's amount due",
}


@dataclass(frozen=True, slots=True)
class CreditNoteDocument:
    note: CreditNote
    lines: list[CreditNoteLine]
    invoice: Invoice
    buyer_name: str
    buyer_email: str | None
    buyer: InvoiceParties | None = None  # the corrected invoice's billing details

    @property
    def number(self) -> str:
        return self.note.number


async def load_credit_note_document(db: Database, *, credit_note_id: uuid.UUID,
                                    organization_id: uuid.UUID | None) -> CreditNoteDocument:
    """The credit note with its lines, invoice and buyer; ``organization_id`` None means any
    organization (super-admins); another organization's note is NOT_FOUND, as a missing one."""
    async with db.read() as session:
        statement = (
            select(CreditNote, Invoice, Organization.name, Organization.billing_email, InvoiceParties)
            .join(Invoice, Invoice.id == CreditNote.invoice_id)
            .join(Organization, Organization.id == CreditNote.organization_id)
            .outerjoin(InvoiceParties, InvoiceParties.invoice_id == Invoice.id)
            .where(CreditNote.id == credit_note_id)
        )
        if organization_id is not None:
            statement = statement.where(CreditNote.organization_id == organization_id)
        row = (await session.execute(statement)).first()
        if row is None:
            raise not_found("Credit note")
        note, invoice, buyer_name, buyer_email, buyer = row
        lines = list((await session.scalars(
            select(CreditNoteLine).where(CreditNoteLine.credit_note_id == note.id)
            .order_by(CreditNoteLine.position, CreditNoteLine.id))).all())
    return CreditNoteDocument(note=note, lines=lines, invoice=invoice, buyer_name=buyer_name,
                              buyer_email=buyer_email, buyer=buyer)


def credit_tax_text(note: CreditNote) -> str:
    """"PPN 12% of Rp 45,833 (base 11/12 of Rp 50,000) reversed": the rate on the note's net amount."""
    name = note.tax_name or "Tax"
    if note.tax_rate is None:
        return f"{name} reversed"
    base = round_minor(Decimal(note.subtotal) * note.tax_base_numerator / note.tax_base_denominator)
    text = f"{name} {rate_text(note.tax_rate)} of {money_text(base, note.currency)}"
    if note.tax_base_numerator != note.tax_base_denominator:
        text += (f" (base {note.tax_base_numerator}/{note.tax_base_denominator} of "
                 f"{money_text(note.subtotal, note.currency)})")
    return text + " reversed"


def render_credit_note_pdf(document: CreditNoteDocument, *, seller_name: str, seller_address: str,
                           seller_tax_id: str = "") -> bytes:
    note, invoice, currency = document.note, document.invoice, document.note.currency
    dates = [
        ["Credit note number", note.number],
        ["Issued", _date(note.created_at)],
        ["Corrects invoice", f"{invoice.number or '-'} of {_date(invoice.finalized_at or invoice.created_at)}"],
        ["Invoice total", money_text(invoice.total, invoice.currency)],
        ["Reason", note.reason.value.replace("_", " ").capitalize()],
    ]
    rows: list[list] = [["Description", "Amount (tax included)"]]
    rows += [[line.description, money_text(line.amount, currency)] for line in document.lines]
    totals = [
        ["Net amount credited", money_text(note.subtotal, currency)],
        [credit_tax_text(note), money_text(note.tax, currency)],
        ["Total credited", money_text(note.total, currency)],
        [_OUTCOME_TEXT[note.outcome], money_text(note.total, currency)],
    ]
    notes = (f"Memo: {note.memo}",) if note.memo else ()
    return render_pdf(PdfPage(
        title=f"Credit note {note.number}", subject=f"Credit note {note.number} for {document.buyer_name}",
        status=note.status.value, seller=seller_text(seller_name, seller_address, seller_tax_id),
        buyer=buyer_text(document), dates=dates, rows=rows, widths=[None, 45 * mm], totals=totals,
        currency=currency, total_label="Total credited", notes=notes), author=seller_name)
