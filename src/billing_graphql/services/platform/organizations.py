"""Organizations (tenants): created by super-admins or the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found, validation
from billing_graphql.services.platform.audit import record_change, snapshot
from billing_graphql.services.platform.writes import already_exists, unique_write
from billing_graphql.services.pagination import Page, fetch_page


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
    db: Database, actor: Actor | None, *, name: str, external_id: str, now: datetime
) -> Organization:
    name, external_id = _clean(name, external_id)
    organization = Organization(
        id=uuid.uuid4(), name=name, external_id=external_id, created_at=now, updated_at=now
    )
    exists = partial(already_exists, "An organization with external id", external_id, "externalId")
    async with unique_write(db, "external_id", exists) as session:
        if await session.scalar(select(Organization.id).where(Organization.external_id == external_id)) is not None:
            raise exists()
        session.add(organization)
        await session.flush()  # the audit and outbox rows reference it
        after = snapshot(organization, "id", "name", "external_id")
        record_change(session, actor=actor, action="organization.created", object_type="Organization",
                      object_id=organization.id, organization_id=organization.id, now=now, after=after,
                      subject=organization)
    return organization


async def list_organizations(db: Database, *, first: int, offset: int) -> Page[Organization]:
    async with db.read() as session:
        statement = select(Organization).order_by(Organization.created_at, Organization.id)
        return await fetch_page(session, statement, first=first, offset=offset)


async def get_organization(db: Database, organization_id: uuid.UUID) -> Organization:
    async with db.read() as session:
        organization = await session.get(Organization, organization_id)
    if organization is None:
        raise not_found("Organization")
    return organization
