"""Partner grants and usage snapshots: a PARTNER key reads the usage of the organizations a
super-admin granted it, and nothing else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import ApiKey, Organization, PartnerGrant
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.periods import Period
from billing_graphql.domain.roles import Role
from billing_graphql.domain.usage import month_key
from billing_graphql.services.pagination import Page, fetch_page
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.services.usage.ingest import dialect_insert
from billing_graphql.services.usage.amounts import usage_amounts
from billing_graphql.services.usage.reading import (
    MetricUse,
    OrganizationPlan,
    amounts_of,
    metric_uses,
    organization_amounts,
    organization_plans,
)

GRANTS = PartnerGrant.__table__


async def _check_grant_target(session: AsyncSession, api_key_id: uuid.UUID, organization_id: uuid.UUID) -> None:
    key = await session.get(ApiKey, api_key_id)
    if key is None:
        raise not_found("API key", "apiKeyId")
    if key.role is not Role.PARTNER:
        raise validation(f"Only PARTNER keys get partner access (this key is {key.role.value}).", "apiKeyId")
    if key.revoked_at is not None:
        raise validation("This API key is revoked.", "apiKeyId")
    if await session.get(Organization, organization_id) is None:
        raise not_found("Organization", "organizationId")


async def grant_partner_access(
    db: Database, actor: Actor | None, *, api_key_id: uuid.UUID, organization_id: uuid.UUID, now: datetime
) -> None:
    """Let a PARTNER key read the organization's usage snapshots (granting twice is harmless)."""
    async with db.write() as session:
        await _check_grant_target(session, api_key_id, organization_id)
        statement = dialect_insert(session)(GRANTS).values(
            id=uuid.uuid4(), api_key_id=api_key_id, organization_id=organization_id, created_at=now
        ).on_conflict_do_nothing(index_elements=[GRANTS.c.api_key_id, GRANTS.c.organization_id])
        await session.execute(statement)
        record_audit(session, actor=actor, action="partner_access.granted", object_type="ApiKey",
                     object_id=api_key_id, organization_id=organization_id, now=now,
                     after={"apiKeyId": str(api_key_id), "organizationId": str(organization_id)})


async def revoke_partner_access(
    db: Database, actor: Actor | None, *, api_key_id: uuid.UUID, organization_id: uuid.UUID, now: datetime
) -> None:
    """Withdraw a grant; NOT_FOUND when there was none."""
    async with db.write() as session:
        result = await session.execute(
            delete(PartnerGrant).where(PartnerGrant.api_key_id == api_key_id,
                                       PartnerGrant.organization_id == organization_id)
        )
        if result.rowcount == 0:
            raise BillingError(BillingErrorCode.NOT_FOUND, "This key has no access to this organization.",
                               field="apiKeyId")
        record_audit(session, actor=actor, action="partner_access.revoked", object_type="ApiKey",
                     object_id=api_key_id, organization_id=organization_id, now=now,
                     before={"apiKeyId": str(api_key_id), "organizationId": str(organization_id)})


class SnapshotsForbidden(Exception):
    """An organization asked for is not granted to the partner (or does not exist)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    organization: OrganizationPlan
    period: Period  # the billing month shown
    metrics: list[MetricUse]
    amounts: dict[uuid.UUID, int]  # charged metrics: amount so far (services.usage.amounts)

    @property
    def month(self) -> str:
        return month_key(self.period.start)


async def _snapshots(session: AsyncSession, found: list[OrganizationPlan], now: datetime,
                     month: datetime | None) -> list[Snapshot]:
    """Each organization's usage in its billing month in force at ``now``, or in the one starting
    in the calendar month ``month`` (the month ``usage`` means: ``OrganizationPlan.month``)."""
    periods = {item.organization.id: item.month(now, month) for item in found}
    uses = await metric_uses(session, {item.organization.id: (item.plan.id if item.plan else None,
                                                              month_key(periods[item.organization.id].start))
                                       for item in found})
    amounts = await usage_amounts(session, [amounts_of(item, periods[item.organization.id], uses[item.organization.id])
                                            for item in found])
    return [Snapshot(item, periods[item.organization.id], uses[item.organization.id], amounts[item.organization.id])
            for item in found]


async def _granted(session: AsyncSession, actor: Actor, organization_ids: list[uuid.UUID | None]
                   ) -> list[OrganizationPlan]:
    """The organizations asked for (each once, in the order asked; missing ones left out) with their live
    subscription and plan. A partner asking for any one not granted to it (or malformed, or missing) gets
    SnapshotsForbidden for the whole request."""
    wanted = list(dict.fromkeys(organization_ids))
    if actor.role is not Role.SUPER_ADMIN:
        ids = [item for item in wanted if item is not None]
        granted = await session.scalar(
            select(func.count()).select_from(PartnerGrant)
            .where(PartnerGrant.api_key_id == actor.api_key_id, PartnerGrant.organization_id.in_(ids))
        ) if ids and actor.api_key_id is not None else 0
        if len(ids) != len(wanted) or granted != len(ids):
            raise SnapshotsForbidden()
    return await organization_plans(session, [item for item in wanted if item is not None])


async def _granted_page(session: AsyncSession, actor: Actor, *, first: int, offset: int) -> Page[OrganizationPlan]:
    """A page of the granted organizations (every organization for super-admins), by name, with their live
    subscription and plan."""
    statement = select(Organization.id).order_by(Organization.name, Organization.id)
    if actor.role is not Role.SUPER_ADMIN:
        statement = statement.join(PartnerGrant, PartnerGrant.organization_id == Organization.id).where(
            PartnerGrant.api_key_id == actor.api_key_id
        )
    page = await fetch_page(session, statement, first=first, offset=offset)
    found = await organization_plans(session, list(page.items)) if page.items else []
    return Page(items=found, offset=page.offset, has_next=page.has_next)


async def snapshots_of(
    db: Database, actor: Actor, organization_ids: list[uuid.UUID | None], now: datetime, month: datetime | None
) -> list[Snapshot]:
    """Snapshots of the organizations asked for, in that order. A partner asking for any one not
    granted to it (or malformed, or missing) gets SnapshotsForbidden for the whole request."""
    async with db.read() as session:
        return await _snapshots(session, await _granted(session, actor, organization_ids), now, month)


async def snapshot_page(db: Database, actor: Actor, now: datetime, month: datetime | None, *, first: int,
                        offset: int) -> Page[Snapshot]:
    """A page of the granted organizations' snapshots (every organization's for super-admins), by name."""
    async with db.read() as session:
        page = await _granted_page(session, actor, first=first, offset=offset)
        items = await _snapshots(session, list(page.items), now, month) if page.items else []
    return Page(items=items, offset=page.offset, has_next=page.has_next)


@dataclass(frozen=True, slots=True)
class SnapshotBasis:
    """What the SQL tier writes a snapshot from (``graphql.usage.types.snapshot_rows``), as values: the organization,
    its live plan (None without a live subscription), the billing month shown (``OrganizationPlan.month``: found by
    the domain's rules in Python) and, where asked, the charged metrics' amounts so far (``organization_amounts``)."""

    organization_id: uuid.UUID
    plan_id: uuid.UUID | None
    month: Period
    amounts: dict[uuid.UUID, int] | None

    @property
    def month_key(self) -> str:
        return month_key(self.month.start)


async def _bases(session: AsyncSession, found: list[OrganizationPlan], now: datetime, month: datetime | None,
                 amounts: bool) -> list[SnapshotBasis]:
    periods = [item.month(now, month) for item in found]
    priced = await organization_amounts(session, list(zip(found, periods, strict=True))) if amounts else {}
    return [SnapshotBasis(item.organization.id, item.plan.id if item.plan else None, period,
                          priced.get(item.organization.id) if amounts else None)
            for item, period in zip(found, periods, strict=True)]


async def snapshot_bases_of(db: Database, actor: Actor, organization_ids: list[uuid.UUID | None], now: datetime,
                            month: datetime | None, *, amounts: bool) -> list[SnapshotBasis]:
    """``snapshots_of``'s first reads, for the SQL tier: the same organizations (SnapshotsForbidden as there), each
    with its plan and month, and its amounts where ``amounts`` (one statement more, with a live subscription)."""
    async with db.read() as session:
        return await _bases(session, await _granted(session, actor, organization_ids), now, month, amounts)


async def snapshot_basis_page(db: Database, actor: Actor, now: datetime, month: datetime | None, *, first: int,
                              offset: int, amounts: bool) -> Page[SnapshotBasis]:
    """``snapshot_page``'s first reads, for the SQL tier (as ``snapshot_bases_of``)."""
    async with db.read() as session:
        page = await _granted_page(session, actor, first=first, offset=offset)
        items = await _bases(session, list(page.items), now, month, amounts) if page.items else []
    return Page(items=items, offset=page.offset, has_next=page.has_next)
