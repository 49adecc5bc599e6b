"""Announcing committed changes to live subscribers: outbox events and usage counters.

A service that writes an outbox event (``services.platform.audit.emit_event``) or changes a usage
counter (``services.usage.ingest``) notes it on its session (``note_event``, ``note_usage``). When
that session's transaction commits:

- PostgreSQL: the notes went out just before COMMIT as ``pg_notify('billing_live', ...)`` in the
  same transaction. PostgreSQL delivers a notification only when (and after) its transaction
  commits, in commit order, and drops it with a rolled-back one: no message for work that did not
  happen, none before it is visible. Payloads carry ids only (``e:<organization>:<event>``,
  ``u:<organization>``), several per notification, each under PostgreSQL's 8,000-byte limit.
- SQLite (one process): after COMMIT, the notes are handed to this process's listeners of that
  database (``listen_locally``); a rollback drops them.

Every ``serve`` process keeps one LISTEN connection (``services.live.hub``) and fans out to its own
sockets, whichever process (serve, run-billing, deliver-webhooks) wrote the change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import event, text
from sqlalchemy.orm import Session

log = logging.getLogger("billing_graphql.live")

CHANNEL = "billing_live"
PENDING = "billing_live_pending"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses a payload of 8,000 bytes or more

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# SQLite: listeners per database URL (in-process only).
_LOCAL: dict[str, set[Callable[[list[str]], None]]] = {}


def event_item(organization_id: uuid.UUID | None, event_id: uuid.UUID) -> str:
    return f"e:{organization_id or ''}:{event_id}"


def usage_item(organization_id: uuid.UUID) -> str:
    return f"u:{organization_id}"


def note_event(session: Session, organization_id: uuid.UUID | None, event_id: uuid.UUID) -> None:
    """An outbox event written in this session's transaction (announced at commit)."""
    _pending(session).append(event_item(organization_id, event_id))


def note_usage(session: Session, organization_id: uuid.UUID) -> None:
    """A usage counter of the organization changed in this session's transaction (announced at commit)."""
    item = usage_item(organization_id)
    pending = _pending(session)
    if item not in pending:
        pending.append(item)


def _pending(session) -> list[str]:
    session = getattr(session, "sync_session", session)  # an AsyncSession's notes live on its Session
    return session.info.setdefault(PENDING, [])


def payloads(items: Iterable[str]) -> Iterator[str]:
    """The items joined by commas into payloads under ``MAX_PAYLOAD_BYTES``."""
    chunk: list[str] = []
    size = 0
    for item in items:
        if chunk and size + len(item) + 1 > MAX_PAYLOAD_BYTES:
            yield ",".join(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        yield ",".join(chunk)


def parse(payload: str) -> list[str]:
    return [item for item in payload.split(",") if item]


def listen_locally(database_url: str, listener: Callable[[list[str]], None]) -> Callable[[], None]:
    """Call ``listener`` with the items of each committed SQLite transaction on ``database_url``;
    returns the function that stops it."""
    _LOCAL.setdefault(database_url, set()).add(listener)

    def stop() -> None:
        _LOCAL.get(database_url, set()).discard(listener)

    return stop


def _url(session: Session) -> str:
    return session.get_bind().url.render_as_string(hide_password=False)


@event.listens_for(Session, "before_commit")
def _notify_in_transaction(session: Session) -> None:
    pending = session.info.get(PENDING)
    if not pending or session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()
    for payload in payloads(pending):
        connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


@event.listens_for(Session, "after_commit")
def _announce_locally(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if not pending or session.get_bind().dialect.name != "sqlite":
        return
    for listener in list(_LOCAL.get(_url(session), ())):
        try:
            listener(list(pending))
        except Exception:  # a listener's failure never fails the commit that already happened
            log.exception("live: a local listener failed")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)
