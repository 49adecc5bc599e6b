"""Billing details of an organization (owners edit them) and their copy on finalized invoices."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingDetails, Invoice, InvoiceParties, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.billing_details import BillingDetailsValue, merge_billing_details
from billing_graphql.domain.errors import not_found
from billing_graphql.domain.language import language_of
from billing_graphql.services.platform.audit import record_change

if TYPE_CHECKING:
    from billing_graphql.gateways import GatewayRegistry

FIELDS = ("legal_name", "address", "country", "tax_id", "language")
log = logging.getLogger(__name__)


def value_of(row: BillingDetails | None) -> BillingDetailsValue:
    if row is None:
        return BillingDetailsValue()
    return BillingDetailsValue(row.legal_name, row.address, row.country, row.tax_id, language_of(row.language))


def _snapshot(value: BillingDetailsValue) -> dict[str, str | None]:
    return {name: (str(getattr(value, name)) if name == "language" else getattr(value, name)) for name in FIELDS}


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
    language: str | None = None,
    now: datetime,
    gateways: GatewayRegistry | None = None,
) -> BillingDetailsValue:
    """Change the organization's billing details (None keeps a field, "" clears it; ``language`` is
    en or id, the language of its documents); audited.

    Invoices finalized later carry the new details; finalized ones keep the copy they have.
    With ``gateways``, an organization whose customer is a Stripe Customer has it updated after
    the commit (``sync_stripe_customer``).
    """
    async with db.write() as session:
        # The organization's lock (FOR UPDATE on PostgreSQL; SQLite's write session holds BEGIN IMMEDIATE).
        organization = await session.get(Organization, organization_id, with_for_update=True)
        if organization is None:
            raise not_found("Organization", "organizationId")
        customer_id, organization_name = organization.gateway_customer_id, organization.name
        row = await session.get(BillingDetails, organization_id)
        before = value_of(row)
        after = merge_billing_details(before, legal_name=legal_name, address=address, country=country,
                                      tax_id=tax_id, language=language)
        if after != before:
            if row is None:
                row = BillingDetails(organization_id=organization_id)
                session.add(row)
            for name in FIELDS:
                value = getattr(after, name)
                setattr(row, name, value.value if name == "language" else value)
            row.updated_at = now
            record_change(session, actor=actor, action="organization.billing_details_updated",
                          object_type="Organization", object_id=organization_id, organization_id=organization_id,
                          now=now, before=_snapshot(before), after=_snapshot(after),
                          subject=organization, billing_details=_snapshot(after))
    # Committed. The same call repeated (no change) sends the state to Stripe again: a retry.
    if gateways is not None:
        await sync_stripe_customer(gateways, customer_id, after, organization_id=organization_id,
                                   organization_name=organization_name)
    return after


async def sync_stripe_customer(gateways: GatewayRegistry, customer_id: str | None, details: BillingDetailsValue, *,
                               organization_id: uuid.UUID, organization_name: str) -> bool:
    """The Stripe Customer's name and address set from the committed billing details. Called
    after the commit, never inside the transaction: a Stripe failure is logged and loses nothing
    locally; the next change (or the same call repeated) sends the whole state again. True when
    Stripe took it."""
    from billing_graphql.gateways.base import GatewayError
    from billing_graphql.services.payments.stripe_methods import is_stripe_customer

    if not is_stripe_customer(customer_id):
        return False
    try:
        gateway = gateways.get("stripe")
    except (GatewayError, LookupError, ValueError):
        log.warning("billing details of %s not sent to Stripe: Stripe is not configured", organization_id)
        return False
    return await push_to_stripe(gateway, customer_id, details, organization_id=organization_id,
                                organization_name=organization_name)


async def push_to_stripe(gateway: Any, customer_id: str, details: BillingDetailsValue, *,
                         organization_id: uuid.UUID, organization_name: str) -> bool:
    """``details`` onto the Stripe Customer: the legal name (the organization's name without
    one), the address, and the NPWP as the Customer's ``id_npwp`` tax id. A failure is logged;
    True when Stripe took it all."""
    from billing_graphql.gateways.base import GatewayError

    try:
        await gateway.update_customer(customer_id, name=details.legal_name or organization_name,
                                      address=details.address, country=details.country)
    except GatewayError as exc:
        log.warning("billing details of %s not sent to Stripe customer %s: %s", organization_id, customer_id, exc)
        return False
    try:
        await gateway.sync_tax_id(customer_id, details.tax_id)
    except GatewayError as exc:
        log.warning("tax id of %s not sent to Stripe customer %s: %s", organization_id, customer_id, exc)
        return False
    return True


async def copy_billing_details(session: AsyncSession, invoice: Invoice) -> None:
    """At finalization: the buyer's details as they are now become the invoice's own."""
    details = await session.get(BillingDetails, invoice.organization_id)
    if details is None or await session.get(InvoiceParties, invoice.id) is not None:
        return
    session.add(InvoiceParties(
        invoice_id=invoice.id, buyer_legal_name=details.legal_name, buyer_address=details.address,
        buyer_country=details.country, buyer_tax_id=details.tax_id,
    ))
