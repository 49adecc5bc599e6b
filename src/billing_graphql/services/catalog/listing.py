"""Listing a catalog table (plans, add-ons) in display order, for tenants or super-admins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.domain.catalog import check_currency


async def list_catalog(db: Database, model: Any, order: tuple, *, include_inactive: bool,
                       currency: str | None) -> list[Any]:
    """Rows of ``model`` in ``order``: active ones only unless ``include_inactive``; in one
    ``currency`` when given (checked)."""
    statement = select(model).order_by(*order)
    if not include_inactive:
        statement = statement.where(model.is_active.is_(True))
    if currency is not None:
        statement = statement.where(model.currency == check_currency(currency))
    async with db.read() as session:
        return list((await session.scalars(statement)).all())
