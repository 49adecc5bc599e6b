"""Webhook endpoints: create (the secret is returned once), update, delete, rotate the secret.

Who owns what: owners and admins manage their organization's endpoints; super-admins manage
any organization's (``organization_id`` given) and the platform-wide ones (none given), which
receive every organization's events. Another organization's endpoint is NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Organization, WebhookEndpoint
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found, validation
from billing_graphql.domain.webhooks import (
    MAX_DESCRIPTION,
    OLD_SECRET_VALID_FOR,
    clean_event_filters,
    new_secret,
)
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.services.webhooks.addresses import Resolver, resolve, validate_url

MAX_ENDPOINTS = 20  # per organization, and platform-wide
_AUDITED = ("url", "description", "event_types", "enabled")


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


def _events(events: list[str]) -> list[str]:
    try:
        return clean_event_filters(events)
    except ValueError as exc:
        raise validation(str(exc), "events") from None


def _description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise validation(f"The description may be at most {MAX_DESCRIPTION} characters.", "description")
    return description


def _audit(session: AsyncSession, actor: Actor, action: str, endpoint: WebhookEndpoint, now: datetime,
           before: dict | None = None) -> None:
    after = {name: getattr(endpoint, name) for name in _AUDITED} if action != "webhook_endpoint.deleted" else None
    record_audit(session, actor=actor, action=action, object_type="WebhookEndpoint", object_id=endpoint.id,
                 organization_id=endpoint.organization_id, now=now, before=before, after=after)


async def _owner_scope(session: AsyncSession, actor: Actor, requested: uuid.UUID | None) -> uuid.UUID | None:
    """The organization a new endpoint belongs to (None: platform-wide, super-admins only)."""
    if actor.is_super_admin:
        if requested is not None and await session.get(Organization, requested) is None:
            raise not_found("Organization", "organizationId")
        return requested
    scope = actor.organization_in_scope(requested)
    if scope is None:
        raise not_found("Organization", "organizationId")
    return scope


async def create_endpoint(
    db: Database, actor: Actor, *, url: str, events: list[str], description: str | None,
    organization_id: uuid.UUID | None, production: bool, now: datetime, resolver: Resolver = resolve,
) -> tuple[WebhookEndpoint, str]:
    """A new enabled endpoint and its ``whsec_`` secret (shown this once)."""
    cleaned_events = _events(events)
    cleaned_description = _description(description)
    await validate_url(url, production=production, resolver=resolver)
    async with db.write() as session:
        scope = await _owner_scope(session, actor, organization_id)
        same_scope = (WebhookEndpoint.organization_id.is_(None) if scope is None
                      else WebhookEndpoint.organization_id == scope)
        count = await session.scalar(select(func.count()).select_from(WebhookEndpoint).where(same_scope))
        if count >= MAX_ENDPOINTS:
            raise validation(f"At most {MAX_ENDPOINTS} webhook endpoints; delete one first.", "url")
        secret = new_secret()
        endpoint = WebhookEndpoint(
            organization_id=scope, url=url, description=cleaned_description, secret=secret,
            event_types=cleaned_events, enabled=True, created_at=now, updated_at=now,
        )
        session.add(endpoint)
        await session.flush()
        _audit(session, actor, "webhook_endpoint.created", endpoint, now)
    return endpoint, secret


async def _load(session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID, *, lock: bool) -> WebhookEndpoint:
    statement = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if not actor.is_super_admin:
        statement = statement.where(WebhookEndpoint.organization_id == actor.organization_id)
    if lock:
        statement = statement.with_for_update()
    endpoint = await session.scalar(statement.execution_options(populate_existing=True))
    if endpoint is None:
        raise not_found("Webhook endpoint", "id")
    return endpoint


async def get_endpoint(db: Database, actor: Actor, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    async with db.read() as session:
        return await _load(session, actor, endpoint_id, lock=False)


async def update_endpoint(
    db: Database, actor: Actor, endpoint_id: uuid.UUID, changes: EndpointChanges, *, production: bool,
    now: datetime, resolver: Resolver = resolve,
) -> WebhookEndpoint:
    """Change the URL, events, description or enabled flag. Re-enabling clears the failure streak."""
    events = _events(changes.events) if changes.events is not None else None
    description = _description(changes.description) if changes.description is not None else None
    if changes.url is not None:
        await validate_url(changes.url, production=production, resolver=resolver)
    async with db.write() as session:
        endpoint = await _load(session, actor, endpoint_id, lock=True)
        before = {name: getattr(endpoint, name) for name in _AUDITED}
        if changes.url is not None:
            endpoint.url = changes.url
        if events is not None:
            endpoint.event_types = events
        if description is not None:
            endpoint.description = description
        if changes.enabled is not None and changes.enabled != endpoint.enabled:
            endpoint.enabled = changes.enabled
            endpoint.disabled_reason = None if changes.enabled else "Disabled by a user."
            endpoint.failing_since = None
        endpoint.updated_at = now
        _audit(session, actor, "webhook_endpoint.updated", endpoint, now, before)
    return endpoint


async def delete_endpoint(db: Database, actor: Actor, endpoint_id: uuid.UUID, *, now: datetime) -> WebhookEndpoint:
    """Delete an endpoint and its deliveries."""
    async with db.write() as session:
        endpoint = await _load(session, actor, endpoint_id, lock=True)
        before = {name: getattr(endpoint, name) for name in _AUDITED}
        _audit(session, actor, "webhook_endpoint.deleted", endpoint, now, before)
        await session.delete(endpoint)
    return endpoint


async def rotate_secret(db: Database, actor: Actor, endpoint_id: uuid.UUID, *, now: datetime) -> tuple[WebhookEndpoint, str]:
    """A new secret (returned once); the one it replaces keeps signing beside it for 24 hours.
    Rotating again within that time retires the oldest at once (two secrets at most)."""
    async with db.write() as session:
        endpoint = await _load(session, actor, endpoint_id, lock=True)
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + OLD_SECRET_VALID_FOR
        endpoint.secret = secret
        endpoint.updated_at = now
        record_audit(session, actor=actor, action="webhook_endpoint.secret_rotated", object_type="WebhookEndpoint",
                     object_id=endpoint.id, organization_id=endpoint.organization_id, now=now,
                     after={"previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat()})
    return endpoint, secret


def endpoints_statement(organization_id: uuid.UUID | None) -> Any:
    """The endpoints of ``organization_id`` (None: of every organization), oldest first."""
    statement = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if organization_id is not None:
        statement = statement.where(WebhookEndpoint.organization_id == organization_id)
    return statement.limit(MAX_ENDPOINTS * 50)
