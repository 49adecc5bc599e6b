"""Payment methods, payments (charges) and refunds."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, enum_type, money_column, owned_by, reference, uuid_pk


class PaymentMethodType(enum.Enum):
    CREDIT_CARD = "CREDIT_CARD"
    E_WALLET = "E_WALLET"
    VIRTUAL_ACCOUNT = "VIRTUAL_ACCOUNT"
    BANK_TRANSFER = "BANK_TRANSFER"


class PaymentStatus(enum.Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class PaymentMethod(Base):
    __tablename__ = "payment_methods"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_payment_method_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[PaymentMethodType] = mapped_column(enum_type(PaymentMethodType, "payment_method_type"))
    label: Mapped[str] = mapped_column(String(200), default="")
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    __table_args__ = (
        # Exactly one default per organization (the service keeps at least one).
        Index(
            "uq_payment_methods_one_default",
            "organization_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        Index("ix_payment_methods_org", "organization_id", "created_at"),
        CheckConstraint("exp_month IS NULL OR (exp_month BETWEEN 1 AND 12)", name="exp_month_range"),
        CheckConstraint("last4 IS NULL OR length(last4) = 4", name="last4_length"),
    )


class Payment(Base):
    """A charge attempt; written PENDING before the gateway is called."""

    __tablename__ = "payments"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    invoice_id: Mapped[uuid.UUID] = reference("invoices", index=True)
    payment_method_id: Mapped[uuid.UUID | None] = reference("payment_methods", ondelete="SET NULL")
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_payment_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    amount: Mapped[int] = money_column()
    amount_refunded: Mapped[int] = money_column()
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(enum_type(PaymentStatus, "payment_status"))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    disputed_at: Mapped[datetime | None]  # the processor reported a dispute (chargeback)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="refunds_within_amount"
        ),
        Index("ix_payments_org_created", "organization_id", "created_at"),
        Index("ix_payments_currency_created", "currency", "created_at"),  # the revenue analytics' months
    )


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = owned_by()
    invoice_id: Mapped[uuid.UUID] = reference("invoices", index=True)
    payment_id: Mapped[uuid.UUID] = reference("payments")
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_refund_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    amount: Mapped[int] = money_column()
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(enum_type(PaymentStatus, "refund_status"))
    reason: Mapped[str | None] = mapped_column(Text)
    # The credit note (outcome REFUND) this refund pays out, if any.
    credit_note_id: Mapped[uuid.UUID | None] = reference("credit_notes", index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_refunds_org_created", "organization_id", "created_at"),
        Index("ix_refunds_currency_created", "currency", "created_at"),  # the revenue analytics' months
    )
