"""Billing details of an organization (owners edit them) and their copy on finalized invoices."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingDetails, Invoice, InvoiceParties, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.billing_details import BillingDetailsValue, merge_billing_details
from billing_graphql.domain.errors import not_found
from billing_graphql.services.platform.audit import record_change

FIELDS = ("legal_name", "address", "country", "tax_id")


def value_of(row: BillingDetails | None) -> BillingDetailsValue:
    if row is None:
        return BillingDetailsValue()
    return BillingDetailsValue(row.legal_name, row.address, row.country, row.tax_id)


def _snapshot(value: BillingDetailsValue) -> dict[str, str | None]:
    return {name: getattr(value, name) for name in FIELDS}


async def get_billing_details(db: Database, organization_id: uuid.UUID) -> BillingDetailsValue:
    async with db.read() as session:
        return value_of(await session.get(BillingDetails, organization_id))


async def update_billing_details(
    db: Database,
    actor: Actor | None,
    *,
    organization_id: uuid.UUID,
    legal_name: str | None = None,
    address: str | None = None,
    country: str | None = None,
    tax_id: str | None = None,
    now: datetime,
) -> BillingDetailsValue:
    """Change the organization's billing details (None keeps a field, "" clears it); audited.

    Invoices finalized later carry the new details; finalized ones keep the copy they have.
    """
    async with db.write() as session:
        # The organization's lock (FOR UPDATE on PostgreSQL; SQLite's write session holds BEGIN IMMEDIATE).
        organization = await session.get(Organization, organization_id, with_for_update=True)
        if organization is None:
            raise not_found("Organization", "organizationId")
        row = await session.get(BillingDetails, organization_id)
        before = value_of(row)
        after = merge_billing_details(before, legal_name=legal_name, address=address, country=country,
                                      tax_id=tax_id)
        if after == before:
            return after
        if row is None:
            row = BillingDetails(organization_id=organization_id)
            session.add(row)
        for name in FIELDS:
            setattr(row, name, getattr(after, name))
        row.updated_at = now
        record_change(session, actor=actor, action="organization.billing_details_updated",
                      object_type="Organization", object_id=organization_id, organization_id=organization_id,
                      now=now, before=_snapshot(before), after=_snapshot(after),
                      subject=organization, billing_details=_snapshot(after))
    return after


async def copy_billing_details(session: AsyncSession, invoice: Invoice) -> None:
    """At finalization: the buyer's details as they are now become the invoice's own."""
    details = await session.get(BillingDetails, invoice.organization_id)
    if details is None or await session.get(InvoiceParties, invoice.id) is not None:
        return
    session.add(InvoiceParties(
        invoice_id=invoice.id, buyer_legal_name=details.legal_name, buyer_address=details.address,
        buyer_country=details.country, buyer_tax_id=details.tax_id,
    ))
