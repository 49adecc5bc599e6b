"""Organizations (tenants), their API keys and partner grants."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing_graphql.db.models.base import Base, enum_type, money_column, owned_by, uuid_pk
from billing_graphql.domain.money import DEFAULT_CURRENCY, EXPONENTS
from billing_graphql.domain.roles import Role

# The currencies of domain.money (migration 0010 writes the same list).
KNOWN_CURRENCY_CHECK = "currency IN (" + ", ".join(f"'{code}'" for code in sorted(EXPONENTS)) + ")"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    # What it is billed in: its default plan and the plans it is offered (BILLING_DEFAULT_CURRENCY).
    currency: Mapped[str] = mapped_column(String(3), default=DEFAULT_CURRENCY, server_default=DEFAULT_CURRENCY)
    # Account credit, spent on the next invoices after their tax: the last entry of its ledger
    # (credit_balance_transactions, number credit_sequence), moved only by services.billing.credit.
    credit_balance: Mapped[int] = money_column()
    credit_sequence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    credit_currency: Mapped[str | None] = mapped_column(String(3))
    gateway_customer_id: Mapped[str | None] = mapped_column(String(200))
    billing_email: Mapped[str | None] = mapped_column(String(320))
    # Portal links carry the epoch they were issued in; revokeBillingPortalSessions raises it (0019).
    portal_session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="organization", lazy="raise")

    __table_args__ = (
        CheckConstraint("credit_balance >= 0", name="credit_not_negative"),
        CheckConstraint("credit_sequence >= 0 AND (credit_sequence > 0 OR credit_balance = 0)",
                        name="credit_has_ledger"),
        CheckConstraint(KNOWN_CURRENCY_CHECK, name="currency_known"),
        CheckConstraint("portal_session_epoch >= 0", name="portal_session_epoch_not_negative"),
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = owned_by(index=True)
    role: Mapped[Role] = mapped_column(enum_type(Role, "role"))
    label: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organization: Mapped[Organization | None] = relationship(back_populates="api_keys", lazy="raise")

    __table_args__ = (
        CheckConstraint(
            "(role IN ('OWNER', 'ADMIN', 'MEMBER') AND organization_id IS NOT NULL)"
            " OR (role IN ('SUPER_ADMIN', 'PARTNER') AND organization_id IS NULL)",
            name="role_matches_organization",
        ),
    )


class PartnerGrant(Base):
    """A partner's API key may read usage snapshots of this organization."""

    __tablename__ = "partner_grants"

    id: Mapped[uuid.UUID] = uuid_pk()
    api_key_id: Mapped[uuid.UUID] = owned_by("api_keys")
    organization_id: Mapped[uuid.UUID] = owned_by(index=True)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("api_key_id", "organization_id", name="uq_partner_grant"),)
