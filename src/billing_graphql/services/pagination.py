"""Paging in SQL: LIMIT/OFFSET over an ordered statement, one row more to learn if there is a next page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.domain.errors import validation

T = TypeVar("T")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    offset: int
    has_next: bool


def check_page_size(first: int) -> int:
    if first < 0 or first > MAX_PAGE_SIZE:
        raise validation(f"'first' must be between 0 and {MAX_PAGE_SIZE}.", "first")
    return first


async def fetch_page(session: AsyncSession, statement: Select[Any], *, first: int, offset: int) -> Page[Any]:
    """The rows of an ordered ``statement`` from ``offset``, at most ``first`` of them."""
    check_page_size(first)
    if offset < 0:
        raise validation("'after' points before the first item.", "after")
    rows = (await session.scalars(statement.limit(first + 1).offset(offset))).all()
    return Page(items=rows[:first], offset=offset, has_next=len(rows) > first)


async def read_page(db: Database, statement: Select[Any], *, first: int, offset: int,
                    where_given: Sequence[tuple[Any, Any]] = ()) -> Page[Any]:
    """A page of ``statement`` in a read session, narrowed to ``column == value`` for each
    (column, value) of ``where_given`` whose value is given (not None)."""
    for column, value in where_given:
        if value is not None:
            statement = statement.where(column == value)
    async with db.read() as session:
        return await fetch_page(session, statement, first=first, offset=offset)


async def read_first(db: Database, statement: Select[Any]) -> Any | None:
    """The first row of ``statement`` in a read session (None: none)."""
    async with db.read() as session:
        return await session.scalar(statement)


async def read_rows(db: Database, statement: Select[Any]) -> list[Any]:
    """Every row of ``statement`` in a read session."""
    async with db.read() as session:
        return list((await session.scalars(statement)).all())
