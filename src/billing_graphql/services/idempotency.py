"""Idempotency keys of money-moving mutations: a stored result per (organization, key).

Call ``replay`` right after ``lock_organization`` and ``remember`` before the transaction
commits, in the same transaction as the change:

- same key, same operation and input: ``replay`` returns the stored response (the caller
  rebuilds its result from the ids in it);
- same key, different operation or input: IDEMPOTENCY_KEY_REUSED;
- concurrent retries: the organization lock makes the second wait for the first's commit, after
  which it finds the record and replays; the unique constraint on (scope_id, key) is the backstop
  (a second insert fails and its transaction rolls back whole).

Expected failures (BillingError) roll the transaction back, the record with it: a retry of a
failed call runs again, which is safe because the failure wrote nothing. Records are kept (at
least the 24 hours DESIGN.md asks; nothing purges them yet).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import IdempotencyRecord
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.audit import to_json

MAX_KEY_LENGTH = 200
_NAMESPACE = uuid.UUID("1f0d5c8e-5b7a-4b8e-9a53-3d7c1b0b2a10")


def clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise validation(f"An idempotency key is 1 to {MAX_KEY_LENGTH} characters.", "idempotencyKey")
    return key


def request_hash(operation: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"operation": operation, "request": to_json(request)}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_id(scope_id: uuid.UUID, operation: str, key: str, purpose: str) -> uuid.UUID:
    """A stable id for a row a keyed call creates (the same on a retry after a crash)."""
    return uuid.uuid5(_NAMESPACE, f"{scope_id}:{operation}:{key}:{purpose}")


async def replay(
    session: AsyncSession, *, scope_id: uuid.UUID, key: str | None, operation: str, request: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored response for this key, or None when the key is new (or not given)."""
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
            "This idempotency key was used with a different request; use a new key for a new request.",
            field="idempotencyKey",
        )
    return record.response


def remember(
    session: AsyncSession,
    *,
    scope_id: uuid.UUID,
    key: str | None,
    operation: str,
    request: dict[str, Any],
    response: dict[str, Any],
    now: datetime,
) -> None:
    if key is None:
        return
    session.add(
        IdempotencyRecord(
            scope_id=scope_id,
            key=key,
            operation=operation,
            request_hash=request_hash(operation, request),
            response=to_json(response),
            created_at=now,
        )
    )
