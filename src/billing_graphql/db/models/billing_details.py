"""An organization's billing details, the copy printed on each finalized invoice, and trial grants."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billing_graphql.db.models.base import Base, owned_by


class BillingDetails(Base):
    """Who the organization's invoices are addressed to (edited by owners)."""

    __tablename__ = "billing_details"
    __table_args__ = (CheckConstraint("language IN ('en', 'id')", name="language_known"),)

    organization_id: Mapped[uuid.UUID] = owned_by(primary_key=True)
    legal_name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    tax_id: Mapped[str | None] = mapped_column(String(64))
    # The documents' language (domain.language.Language): en or id.
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    updated_at: Mapped[datetime]


class InvoiceParties(Base):
    """The buyer's billing details as they were when the invoice was finalized, and the seller's tax id."""

    __tablename__ = "invoice_parties"

    invoice_id: Mapped[uuid.UUID] = owned_by("invoices", primary_key=True)
    buyer_legal_name: Mapped[str | None] = mapped_column(String(200))
    buyer_address: Mapped[str | None] = mapped_column(Text)
    buyer_country: Mapped[str | None] = mapped_column(String(2))
    buyer_tax_id: Mapped[str | None] = mapped_column(String(64))


class TrialGrant(Base):
    """An organization had this plan's trial; the primary key lets it have it once."""

    __tablename__ = "trial_grants"

    organization_id: Mapped[uuid.UUID] = owned_by(primary_key=True)
    plan_id: Mapped[uuid.UUID] = owned_by("plans", primary_key=True)
    granted_at: Mapped[datetime]
