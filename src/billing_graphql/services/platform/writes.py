"""Writes guarded by a unique column: a value taken first is ALREADY_EXISTS, also when a
concurrent writer takes it between the check and the commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.domain.errors import BillingError, BillingErrorCode


def already_exists(what: str, value: str, field: str) -> BillingError:
    return BillingError(BillingErrorCode.ALREADY_EXISTS, f"{what} {value!r} exists.", field=field)


def is_unique_violation(exc: IntegrityError, column: str) -> bool:
    """Whether an IntegrityError is the unique constraint on ``column`` (SQLite and PostgreSQL
    both name the column or the ``uq_<table>_<column>`` constraint in their message)."""
    message = str(exc.orig).lower()
    return ("unique" in message or "duplicate" in message) and column in message


@asynccontextmanager
async def unique_write(db: Database, column: str, exists: Callable[[], BillingError]) -> AsyncIterator[AsyncSession]:
    """A write session (one transaction). The body checks that its value of ``column`` is free
    and raises ``exists()`` when it is not; a concurrent writer that took the value in between
    (the unique constraint fails at commit) becomes ``exists()`` too."""
    try:
        async with db.write() as session:
            yield session
    except IntegrityError as exc:
        if not is_unique_violation(exc, column):
            raise
        raise exists() from None
