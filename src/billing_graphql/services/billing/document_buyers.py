"""A document's buyer and language, read with the document in one statement: the organization
(name, billing email), the billing details copied onto the invoice at finalization
(``InvoiceParties``) and the language of the organization's documents (``BillingDetails.language``).
The invoice and the credit-note documents load theirs here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import BillingDetails, InvoiceParties, Organization
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.language import Language, language_of


@dataclass(frozen=True, slots=True)
class DocumentBuyer:
    name: str
    email: str | None
    parties: InvoiceParties | None  # the billing details copied onto the invoice
    language: Language


async def load_with_buyer(session: AsyncSession, statement: Select, *, invoice_id: Any, organization_id: Any,
                          scope: uuid.UUID | None, missing: str) -> tuple[tuple, DocumentBuyer]:
    """``statement``'s first row (its own columns) and the buyer of the document it reads.
    ``invoice_id`` and ``organization_id`` are the statement's columns naming the invoice (whose
    copied billing details are the buyer's) and the organization; ``scope`` None reads any
    organization's document (super-admins), else only that organization's: another's is NOT_FOUND
    (``missing``), as a missing one."""
    statement = (
        statement.add_columns(Organization.name, Organization.billing_email, InvoiceParties, BillingDetails.language)
        .join(Organization, Organization.id == organization_id)
        .outerjoin(InvoiceParties, InvoiceParties.invoice_id == invoice_id)
        .outerjoin(BillingDetails, BillingDetails.organization_id == organization_id)
    )
    if scope is not None:
        statement = statement.where(organization_id == scope)
    row = (await session.execute(statement)).first()
    if row is None:
        raise not_found(missing)
    *own, name, email, parties, language = row
    return tuple(own), DocumentBuyer(name=name, email=email, parties=parties, language=language_of(language))
