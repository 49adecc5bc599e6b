"""Inbound gateway webhooks, recorded in the outbox as ``gateway.<gateway>.<event>``.

A delivery the gateway retries (same event id) is recorded once: the event id is kept as an
idempotency key in the unscoped space (``gateway-webhook:<gateway>:<event id>``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Organization
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.platform.idempotency import NO_SCOPE, find_idempotent, store_idempotent

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


async def record_gateway_event(
    db: Database, *, gateway: str, event: str, payload: dict[str, Any], event_id: str | None, now: datetime
) -> bool:
    """Write the event to the outbox; False when this event id was recorded before."""
    event_type = f"gateway.{gateway}.{event}"
    organization_id: uuid.UUID | None = None
    hint = organization_hint(payload)
    key = f"gateway-webhook:{gateway}:{event_id}" if event_id else None
    try:
        async with db.write() as session:
            if key is not None:
                stored = await find_idempotent(
                    session, scope_id=NO_SCOPE, key=key, operation=OPERATION, request={"event": event_type}
                )
                if stored is not None:
                    return False
            if hint is not None:
                try:
                    candidate = uuid.UUID(hint)
                except ValueError:
                    candidate = None
                if candidate is not None:
                    organization_id = await session.scalar(
                        select(Organization.id).where(Organization.id == candidate)
                    )
            emit_event(
                session,
                event_type=event_type,
                organization_id=organization_id,
                payload={"event_id": event_id, "event": payload},
                now=now,
            )
            if key is not None:
                store_idempotent(
                    session,
                    scope_id=NO_SCOPE,
                    key=key,
                    operation=OPERATION,
                    request={"event": event_type},
                    response={"recorded": True},
                    now=now,
                )
    except IntegrityError:
        # A concurrent delivery of the same event id committed first.
        return False
    return True
