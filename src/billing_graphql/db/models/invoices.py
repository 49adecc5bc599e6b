"""Invoices, their lines, and the gapless number sequence."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing_graphql.db.models.base import Base, enum_type, money_column, owned_by, reference, uuid_pk
from billing_graphql.db.types import DecimalText
from billing_graphql.domain.invoices import amount_due
from billing_graphql.domain.invoices import InvoiceLineKind
from billing_graphql.domain.status import InvoiceStatus


class BillingReason(enum.Enum):
    SUBSCRIPTION_CREATE = "SUBSCRIPTION_CREATE"
    SUBSCRIPTION_CYCLE = "SUBSCRIPTION_CYCLE"
    SUBSCRIPTION_UPDATE = "SUBSCRIPTION_UPDATE"
    MANUAL = "MANUAL"


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    subscription_id: Mapped[uuid.UUID | None] = reference("subscriptions", index=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[InvoiceStatus] = mapped_column(enum_type(InvoiceStatus, "invoice_status"))
    billing_reason: Mapped[BillingReason] = mapped_column(enum_type(BillingReason, "billing_reason"))
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    subtotal: Mapped[int] = money_column()
    discount: Mapped[int] = money_column()
    tax: Mapped[int] = money_column()
    tax_name: Mapped[str | None] = mapped_column(String(100))
    tax_rate: Mapped[Decimal | None] = mapped_column(DecimalText)
    tax_base_numerator: Mapped[int] = mapped_column(Integer, default=1)
    tax_base_denominator: Mapped[int] = mapped_column(Integer, default=1)
    total: Mapped[int] = money_column()
    credit_applied: Mapped[int] = money_column()
    amount_paid: Mapped[int] = money_column()
    amount_refunded: Mapped[int] = money_column()
    # Credit notes (``services.billing.credit_notes``): what they credit in all, tax included; the
    # part of it that lowered the amount due (REDUCE_AMOUNT_DUE); the tax they reversed.
    amount_credited: Mapped[int] = money_column()
    credited_against_due: Mapped[int] = money_column()
    tax_credited: Mapped[int] = money_column()
    due_date: Mapped[datetime | None]
    finalized_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    marked_uncollectible_at: Mapped[datetime | None]
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    last_retry_at: Mapped[datetime | None]
    gateway_invoice_id: Mapped[str | None] = mapped_column(String(200))
    gateway_order_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    payment_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    lines: Mapped[list[InvoiceLine]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="InvoiceLine.position"
    )

    @hybrid_property
    def amount_due(self) -> int:
        """total - credit applied - amount paid - credit notes that lowered it: on a row, and as a SQL
        expression on the class (the GraphQL field's SQL form, ``graphql.columns.hybrid``)."""
        return amount_due(self)  # domain.invoices: the one rule

    @amount_due.inplace.expression
    @classmethod
    def _amount_due_sql(cls):  # the same sum; a column is never None in SQL (NOT NULL, default 0)
        return cls.total - cls.credit_applied - cls.amount_paid - cls.credited_against_due

    __table_args__ = (
        # One recurring invoice per subscription and period.
        Index(
            "uq_invoices_one_cycle_per_period",
            "subscription_id",
            "period_start",
            unique=True,
            sqlite_where=text("billing_reason = 'SUBSCRIPTION_CYCLE'"),
            postgresql_where=text("billing_reason = 'SUBSCRIPTION_CYCLE'"),
        ),
        Index("ix_invoices_org_created", "organization_id", "created_at"),
        # The revenue analytics: the outstanding amount, and bad debt per month (``services.analytics.report``).
        Index("ix_invoices_open_currency", "currency", sqlite_where=text("status = 'OPEN'"),
              postgresql_where=text("status = 'OPEN'")),
        Index("ix_invoices_uncollectible_currency_marked", "currency", "marked_uncollectible_at",
              sqlite_where=text("status = 'UNCOLLECTIBLE'"), postgresql_where=text("status = 'UNCOLLECTIBLE'")),
        CheckConstraint("total = subtotal - discount + tax", name="total_adds_up"),
        CheckConstraint(
            "subtotal >= 0 AND discount >= 0 AND tax >= 0 AND discount <= subtotal",
            name="amounts_not_negative",
        ),
        CheckConstraint("credit_applied >= 0 AND credit_applied <= total", name="credit_within_total"),
        CheckConstraint(
            "amount_paid >= 0 AND amount_paid + credited_against_due <= total - credit_applied",
            name="paid_within_due",
        ),
        # Credit notes never credit more than the invoice's total, nor reverse more than its tax.
        CheckConstraint("amount_credited >= 0 AND amount_credited <= total", name="credited_within_total"),
        CheckConstraint("credited_against_due >= 0 AND credited_against_due <= amount_credited",
                        name="credited_due_within_credited"),
        CheckConstraint("tax_credited >= 0 AND tax_credited <= tax AND tax_credited <= amount_credited",
                        name="tax_credited_within_tax"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_paid", name="refunds_within_paid"
        ),
        CheckConstraint("number IS NOT NULL OR status = 'DRAFT'", name="finalized_has_number"),
        CheckConstraint("retry_count >= 0", name="retry_count_not_negative"),
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[uuid.UUID] = uuid_pk()
    invoice_id: Mapped[uuid.UUID] = owned_by("invoices", index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[InvoiceLineKind] = mapped_column(enum_type(InvoiceLineKind, "invoice_line_kind"))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(DecimalText, default=Decimal(1))
    # Exact unit amount in minor units (a prorated unit may carry fractions of a minor unit).
    unit_amount: Mapped[Decimal] = mapped_column(DecimalText)
    # The line's amount, rounded once; negative for credits.
    amount: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    # USAGE lines: [{from_unit, to_unit, units, unit_amount, flat_amount, amount}] (exact minor units as text).
    tier_breakdown: Mapped[list[dict] | None] = mapped_column(JSON(none_as_null=True))
    # What the line bills as structure (domain.invoices.LineDraft.detail); None on lines written
    # before migration 0021 and on free-text lines (one-off charges): their description is shown.
    detail: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))


class InvoiceNumberSequence(Base):
    """The last number handed out per month; its row is locked while a number is assigned."""

    __tablename__ = "invoice_number_sequences"

    month: Mapped[str] = mapped_column(String(6), primary_key=True)  # YYYYMM
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("last_value >= 0", name="last_value_not_negative"),)
