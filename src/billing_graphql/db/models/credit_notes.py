"""Credit notes: corrections of finalized invoices, with their own gapless number series."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing_graphql.db.models.base import Base, enum_type, money_column, owned_by, reference, uuid_pk
from billing_graphql.db.types import DecimalText
from billing_graphql.domain.credit_notes import CreditNoteOutcome, CreditNoteReason, CreditNoteStatus


class CreditNote(Base):
    __tablename__ = "credit_notes"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    invoice_id: Mapped[uuid.UUID] = reference("invoices", index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[CreditNoteStatus] = mapped_column(enum_type(CreditNoteStatus, "credit_note_status"))
    reason: Mapped[CreditNoteReason] = mapped_column(enum_type(CreditNoteReason, "credit_note_reason"))
    outcome: Mapped[CreditNoteOutcome] = mapped_column(enum_type(CreditNoteOutcome, "credit_note_outcome"))
    memo: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = money_column()  # the net part (total - tax)
    tax: Mapped[int] = money_column()
    total: Mapped[int] = money_column()  # what is credited, tax included
    tax_name: Mapped[str | None] = mapped_column(String(100))
    tax_rate: Mapped[Decimal | None] = mapped_column(DecimalText)
    tax_base_numerator: Mapped[int] = mapped_column(Integer, default=1)
    tax_base_denominator: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    lines: Mapped[list[CreditNoteLine]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="CreditNoteLine.position"
    )

    __table_args__ = (
        CheckConstraint("total = subtotal + tax", name="total_adds_up"),
        CheckConstraint("total > 0 AND subtotal >= 0 AND tax >= 0", name="amounts_positive"),
        Index("ix_credit_notes_org_created", "organization_id", "created_at"),
    )


class CreditNoteLine(Base):
    __tablename__ = "credit_note_lines"

    id: Mapped[uuid.UUID] = uuid_pk()
    credit_note_id: Mapped[uuid.UUID] = owned_by("credit_notes", index=True)
    invoice_line_id: Mapped[uuid.UUID | None] = reference("invoice_lines", index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)  # tax included

    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)


class CreditNoteNumberSequence(Base):
    """The last credit note number handed out per month (as ``InvoiceNumberSequence``)."""

    __tablename__ = "credit_note_number_sequences"

    month: Mapped[str] = mapped_column(String(6), primary_key=True)  # YYYYMM
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("last_value >= 0", name="last_value_not_negative"),)
