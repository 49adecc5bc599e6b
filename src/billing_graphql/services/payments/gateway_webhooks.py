"""Inbound gateway webhooks, recorded in the outbox as ``gateway.<gateway>.<event>``.

A delivery the gateway retries (same event id) is recorded once: the event id is kept as an
idempotency key in the unscoped space (``gateway-webhook:<gateway>:<event id>``), through the
unit of work without an organization (``money_move(db, None, ...)``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Organization
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.platform.idempotency import MAX_KEY_LENGTH
from billing_graphql.services.unit_of_work import money_move

EVENT_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
MAX_EVENT_NAME = 80
OPERATION = "gateway.webhook"


def organization_hint(payload: dict[str, Any]) -> str | None:
    """``notes.organization_id`` of the event's first entity, when the gateway echoes it."""
    entities = payload.get("payload")
    if not isinstance(entities, dict):
        return None
    for wrapper in entities.values():
        entity = wrapper.get("entity") if isinstance(wrapper, dict) else None
        notes = entity.get("notes") if isinstance(entity, dict) else None
        if isinstance(notes, dict) and isinstance(notes.get("organization_id"), str):
            return notes["organization_id"]
    return None


def event_key(gateway: str, event_id: str) -> str:
    """The idempotency key of a gateway's event id; a long or unprintable id is hashed to fit."""
    key = f"gateway-webhook:{gateway}:{event_id}"
    if len(key) <= MAX_KEY_LENGTH and key.isprintable():
        return key
    return f"gateway-webhook:{gateway}:sha256:{hashlib.sha256(event_id.encode()).hexdigest()}"


async def record_gateway_event(
    db: Database, *, gateway: str, event: str, payload: dict[str, Any], event_id: str | None, now: datetime
) -> bool:
    """Write the event to the outbox; False when this event id was recorded before."""
    event_type = f"gateway.{gateway}.{event}"
    key = event_key(gateway, event_id) if event_id else None
    try:
        async with money_move(db, None, OPERATION, key, {"event": event_type}, actor=None, now=now) as uow:
            if uow.replayed:
                return False
            emit_event(uow.session, event_type=event_type, organization_id=await _organization(uow.session, payload),
                       payload={"event_id": event_id, "event": payload}, now=now)
            uow.done({"recorded": True})
    except IntegrityError:
        # A concurrent delivery of the same event id committed first.
        return False
    return True


async def _organization(session: AsyncSession, payload: dict[str, Any]) -> uuid.UUID | None:
    """The organization the event names (``organization_hint``) when it exists."""
    try:
        candidate = uuid.UUID(organization_hint(payload) or "")
    except ValueError:
        return None
    return await session.scalar(select(Organization.id).where(Organization.id == candidate))
