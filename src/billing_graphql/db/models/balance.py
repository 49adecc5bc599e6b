"""The account balance's ledger and the pending one-off charges of the next invoice."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, enum_type, owned_by, reference, uuid_pk
from billing_graphql.domain.credit_balance import CreditSource


class CreditBalanceTransaction(Base):
    """One change of an organization's account balance (``organizations.credit_balance``).

    The entries of an organization form a chain the database checks: entry n+1 names entry n
    (``previous_sequence``) and starts from its ``balance_after`` (a foreign key on
    (organization, sequence, balance after)); the first starts from zero; each ends at
    ``balance_before + amount``, never below zero; no two entries share a sequence. So the last
    entry's ``balance_after`` is the sum of the amounts, and a change of the balance written
    without its entry makes the next entry fail. ``services.billing.credit`` writes the entry in
    the same unit of work as the balance it moves.
    """

    __tablename__ = "credit_balance_transactions"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    sequence: Mapped[int] = mapped_column(BigInteger)
    previous_sequence: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_before: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[CreditSource] = mapped_column(enum_type(CreditSource, "credit_source"))
    reason: Mapped[str] = mapped_column(Text, default="")
    invoice_id: Mapped[uuid.UUID | None] = reference("invoices", ondelete="SET NULL")
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("organization_id", "sequence", name="uq_credit_balance_transactions_sequence"),
        UniqueConstraint("organization_id", "sequence", "balance_after",
                         name="uq_credit_balance_transactions_chain_link"),
        ForeignKeyConstraint(
            ["organization_id", "previous_sequence", "balance_before"],
            ["credit_balance_transactions.organization_id", "credit_balance_transactions.sequence",
             "credit_balance_transactions.balance_after"],
            name="fk_credit_balance_transactions_previous",
        ),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("balance_after = balance_before + amount", name="balance_adds_up"),
        CheckConstraint("balance_before >= 0 AND balance_after >= 0", name="balance_not_negative"),
        CheckConstraint(
            "(sequence = 1 AND previous_sequence IS NULL AND balance_before = 0)"
            " OR (sequence > 1 AND previous_sequence = sequence - 1)",
            name="chained",
        ),
    )


class InvoiceItem(Base):
    """A one-off charge: pending (``invoice_id`` and ``deleted_at`` null) until the organization's
    next invoice (renewal or change) bills it as a line; deleted (kept, ``deleted_at`` set) only
    while pending."""

    __tablename__ = "invoice_items"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    description: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[uuid.UUID | None] = reference("invoices", index=True)
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("unit_amount > 0", name="unit_amount_positive"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("amount = unit_amount * quantity", name="amount_adds_up"),
        CheckConstraint("deleted_at IS NULL OR invoice_id IS NULL", name="deleted_while_pending"),
        Index("ix_invoice_items_org_created", "organization_id", "created_at"),
    )
