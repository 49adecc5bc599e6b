"""Organizations (tenants): created by super-admins or the CLI."""

from __future__ import annotations

from typing import Any

import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import select

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found, validation
from billing_graphql.domain.money import DEFAULT_CURRENCY, normalize_currency
from billing_graphql.services.platform.audit import record_change, snapshot
from billing_graphql.services.platform.writes import already_exists, unique_write
from billing_graphql.services.pagination import Page, fetch_page
from billing_graphql.services.subscriptions.loading import live_subscription


def _clean(name: str, external_id: str) -> tuple[str, str]:
    name, external_id = name.strip(), external_id.strip()
    if not name:
        raise validation("Name is required.", "name")
    if len(name) > 200:
        raise validation("Name is at most 200 characters.", "name")
    if not external_id:
        raise validation("External id is required.", "externalId")
    if len(external_id) > 200:
        raise validation("External id is at most 200 characters.", "externalId")
    return name, external_id


async def create_organization(
    db: Database, actor: Actor | None, *, name: str, external_id: str, now: datetime,
    currency: str = DEFAULT_CURRENCY,
) -> Organization:
    """A new organization billed in ``currency`` (the caller passes BILLING_DEFAULT_CURRENCY when
    none was asked for); an unknown currency is a VALIDATION error on ``currency``."""
    name, external_id = _clean(name, external_id)
    currency = normalize_currency(currency, "currency")
    organization = Organization(
        id=uuid.uuid4(), name=name, external_id=external_id, currency=currency, created_at=now, updated_at=now
    )
    exists = partial(already_exists, "An organization with external id", external_id, "externalId")
    async with unique_write(db, "external_id", exists) as session:
        if await session.scalar(select(Organization.id).where(Organization.external_id == external_id)) is not None:
            raise exists()
        session.add(organization)
        await session.flush()  # the audit and outbox rows reference it
        after = snapshot(organization, "id", "name", "external_id", "currency")
        record_change(session, actor=actor, action="organization.created", object_type="Organization",
                      object_id=organization.id, organization_id=organization.id, now=now, after=after,
                      subject=organization)
    return organization


async def update_organization(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, name: str | None = None,
    currency: str | None = None, now: datetime,
) -> Organization:
    """A super-admin's change of an organization's name or currency. The currency changes only
    while the organization has no live subscription (VALIDATION on ``currency`` otherwise): what
    it is billed in follows its subscription. No change writes nothing."""
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise validation("Name is 1 to 200 characters.", "name")
    if currency is not None:
        currency = normalize_currency(currency, "currency")
    async with db.write() as session:
        await lock_organization(session, organization_id)
        organization = await session.get(Organization, organization_id)
        if organization is None:
            raise not_found("Organization")
        before = snapshot(organization, "name", "currency")
        if currency is not None and currency != organization.currency:
            if await live_subscription(session, organization_id) is not None:
                raise validation("The currency of an organization with a live subscription cannot change; "
                                 "cancel the subscription first.", "currency")
            organization.currency = currency
        if name is not None:
            organization.name = name
        after = snapshot(organization, "name", "currency")
        if after != before:
            organization.updated_at = now
            record_change(session, actor=actor, action="organization.updated", object_type="Organization",
                          object_id=organization.id, organization_id=organization.id, now=now, before=before,
                          after=after, subject=organization)
    return organization


async def list_organizations(db: Database, *, first: int, offset: int) -> Page[Organization]:
    async with db.read() as session:
        return await fetch_page(session, organizations_statement(), first=first, offset=offset)


def organizations_statement() -> Any:
    """Every organization, oldest first."""
    return select(Organization).order_by(Organization.created_at, Organization.id)


def organization_statement(organization_id: uuid.UUID) -> Any:
    """The organization of ``organization_id``."""
    return select(Organization).where(Organization.id == organization_id)
