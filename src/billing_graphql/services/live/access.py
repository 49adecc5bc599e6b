"""What a live subscription reads besides the hub: partner grants, invoice state, usage now."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Metric, PartnerGrant
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.services.portal.sessions import open_portal_session
from billing_graphql.services.usage.reading import UsageNow, usage_now
from billing_graphql.settings import Settings


async def granted_organizations(db: Database, actor: Actor) -> list[uuid.UUID]:
    """The organizations a PARTNER key is granted."""
    async with db.read() as session:
        return list((await session.scalars(
            select(PartnerGrant.organization_id).where(PartnerGrant.api_key_id == actor.api_key_id)
            .order_by(PartnerGrant.organization_id))).all())


async def still_granted(db: Database, actor: Actor, organization_ids: frozenset[uuid.UUID]) -> bool:
    """Whether every organization is still granted to the actor (always, for super-admins)."""
    if actor.role is Role.SUPER_ADMIN:
        return True
    async with db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(PartnerGrant)
            .where(PartnerGrant.api_key_id == actor.api_key_id, PartnerGrant.organization_id.in_(organization_ids)))
    return count == len(organization_ids)


async def invoice_state(db: Database, invoice_id: uuid.UUID, organization_id: uuid.UUID | None) -> Invoice | None:
    """The invoice now; with ``organization_id`` only when it belongs to that organization."""
    statement = select(Invoice).where(Invoice.id == invoice_id)
    if organization_id is not None:
        statement = statement.where(Invoice.organization_id == organization_id)
    async with db.read() as session:
        return await session.scalar(statement)


async def metric_codes(db: Database) -> set[str]:
    async with db.read() as session:
        return set((await session.scalars(select(Metric.code))).all())


async def usage_of(db: Database, organization_id: uuid.UUID, now: datetime) -> UsageNow:
    async with db.read() as session:
        return await usage_now(session, organization_id, now)


PORTAL_SUBJECT = "portal"


async def portal_reader(db: Database, token: str, *, settings: Settings, now: datetime) -> Actor:
    """The actor a billing portal link gives a live socket (``{"portalToken": ...}`` in connection_init):
    a MEMBER of the link's organization, which may read usage and nothing more, and which the transport
    further restricts to the portal's one document (``graphql.live.transport.PORTAL_USAGE``). The link is
    checked as its pages check it (expiry, revokeBillingPortalSessions, its API key revoked):
    ``PortalTokenInvalid`` when it no longer opens."""
    claims = await open_portal_session(db, token, settings=settings, now=now)
    return Actor(role=Role.MEMBER, organization_id=claims.organization_id, subject=PORTAL_SUBJECT,
                 api_key_id=claims.api_key_id)
