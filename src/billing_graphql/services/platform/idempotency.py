"""Idempotency keys of money-moving mutations, stored in ``idempotency_records``.

A record is keyed by (scope_id, key): the scope is the organization acted on (the all-zero
UUID for actions outside one), so tenants never see each other's keys. It stores the
operation, a SHA-256 of the canonical JSON of the request, and a JSON response.

Semantics (used through the unit of work, ``services.unit_of_work.money_move``, which calls
``find_idempotent`` and ``store_idempotent``):
- Call it inside the caller's write transaction, after taking the lock that serializes the
  scope (``lock_organization``): a concurrent retry then waits for the first to commit and
  sees its record. The unique constraint on (scope_id, key) backs this when no lock is held:
  the second INSERT fails and its transaction rolls back.
- A key not seen before: the use case runs; its response (a JSON-able dict) is stored with
  the request's hash.
- The same key with the same operation and request: the stored response, and the use case
  writes nothing.
- The same key with another operation or request: IDEMPOTENCY_KEY_REUSED.
- When the use case raises (a business error), nothing is stored and the transaction rolls
  back, so the same key may be retried once the cause is fixed.
- Records are kept at least ``RETENTION`` (24 hours); ``purge_idempotency_records`` deletes
  older ones.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import IdempotencyRecord
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.platform.audit import to_json

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 200
NO_SCOPE = uuid.UUID(int=0)
_NAMESPACE = uuid.UUID("1f0d5c8e-5b7a-4b8e-9a53-3d7c1b0b2a10")


def clean_key(key: str | None, field: str = "idempotencyKey") -> str | None:
    """None when no key was given; else the key, 1..200 printable characters."""
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise validation(f"An idempotency key is 1 to {MAX_KEY_LENGTH} printable characters.", field)
    return key


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, "request": to_json(request)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_id(scope_id: uuid.UUID, operation: str, key: str, purpose: str) -> uuid.UUID:
    """A stable id for a row a keyed call creates (the same on a retry after a crash)."""
    return uuid.uuid5(_NAMESPACE, f"{scope_id}:{operation}:{key}:{purpose}")


async def find_idempotent(
    session: AsyncSession, *, scope_id: uuid.UUID, key: str | None, operation: str, request: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored response for this key, None when it is new (or no key was given);
    IDEMPOTENCY_KEY_REUSED when the key was used for another operation or request."""
    if key is None:
        return None
    record = await session.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.scope_id == scope_id, IdempotencyRecord.key == key)
    )
    if record is None:
        return None
    if record.operation != operation or record.request_hash != request_hash(operation, request):
        raise BillingError(
            BillingErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was already used with a different request; use a new key.",
            field="idempotencyKey",
        )
    return record.response


def store_idempotent(
    session: AsyncSession,
    *,
    scope_id: uuid.UUID,
    key: str | None,
    operation: str,
    request: dict[str, Any],
    response: dict[str, Any],
    now: datetime,
) -> None:
    """Keep the response for this key (nothing when no key was given)."""
    if key is None:
        return
    session.add(
        IdempotencyRecord(
            id=uuid.uuid4(),
            scope_id=scope_id,
            key=key,
            operation=operation,
            request_hash=request_hash(operation, request),
            response=to_json(response),
            created_at=now,
        )
    )


async def purge_idempotency_records(db: Database, *, now: datetime, older_than: timedelta = RETENTION) -> int:
    """Delete records older than ``older_than`` (never less than the 24-hour retention)."""
    cutoff = now - max(older_than, RETENTION)
    async with db.write() as session:
        result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return result.rowcount or 0
