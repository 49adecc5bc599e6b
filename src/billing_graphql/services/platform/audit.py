"""Audit rows and outbox events, written in the caller's transaction."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import AuditEvent, OutboxEvent
from billing_graphql.db.models.base import ordered_uuid
from billing_graphql.domain.actors import Actor
from billing_graphql.services.live.signals import note_event


PLAIN_TYPES = frozenset({str, int, bool, float})  # JSON as they are


class JsonData(dict):
    """An event's data made JSON-safe as it was built (``webhooks.objects.event_data``: every value
    through the API's scalars, anything else through ``to_json``): ``to_json`` takes it as it is."""


def to_json(value: Any) -> Any:
    """A JSON-safe copy of plain values: UUIDs, datetimes, Decimals and enums become strings
    (``JsonData`` is JSON-safe already: itself, not a copy)."""
    if value is None or type(value) in PLAIN_TYPES:  # most of an event's payload: nothing to convert
        return value
    if type(value) is JsonData:
        return value
    # Plain keys and items are taken as they are here (a call each for the rest): the same copy.
    if isinstance(value, dict):
        return {key if type(key) is str else str(key): item if item is None or type(item) in PLAIN_TYPES else to_json(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [item if item is None or type(item) in PLAIN_TYPES else to_json(item) for item in value]
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def snapshot(row: Any, *fields: str) -> dict[str, Any]:
    """The named attributes of a row, JSON-safe (for an audit row's before/after)."""
    return to_json({name: getattr(row, name) for name in fields})


def record_audit(
    session: AsyncSession,
    *,
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str,
    organization_id: uuid.UUID | None,
    now: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    event: bool = False,
    subject: Any = None,
    **extra: Any,
) -> None:
    """An audit row, in the caller's transaction; with ``event``, also the outbox event named
    ``action``: ``subject`` (the row, as it is now or was when removed) shown as the API shows an
    ``object_type``, with ``extra`` (``services/webhooks/objects.py``)."""
    session.add(
        AuditEvent(
            organization_id=organization_id,
            actor=actor.subject if actor else "system",
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            reason=reason,
            created_at=now,
        )
    )
    if event:
        from billing_graphql.services.webhooks.objects import event_data

        if subject is None:
            raise TypeError(f"{action}: an event needs subject=<the row> (its data.object)")
        emit_event(session, event_type=action, organization_id=organization_id,
                   payload=event_data(object_type, subject, **extra), now=now)


class EventRows:
    """A session that keeps the outbox events it is given as rows (a dict of the columns' values
    each, in the order they were made) in ``events``, for one INSERT of its own, rather than as ORM
    objects added to it: the billing run's batch (``renewal_batch._Writes``)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []


def emit_event(
    session: AsyncSession | EventRows,
    *,
    event_type: str,
    organization_id: uuid.UUID | None,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    event = {
        "id": ordered_uuid(),  # OutboxEvent's own default, wanted here before the flush
        "organization_id": organization_id,
        "event_type": event_type,
        "payload": to_json(payload),
        "created_at": now,
    }
    if isinstance(session, EventRows):
        session.events.append(event)
    else:
        session.add(OutboxEvent(**event))
    note_event(session, organization_id, event["id"])  # live subscribers hear of it once it commits


#: An audit row and the outbox event named after its action (``record_audit(..., event=True)``).
record_change = partial(record_audit, event=True)
