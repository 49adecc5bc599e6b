"""What the catalog services (plans, add-ons, coupons) share: one spec per kind of row, from
which its patch, its audited fields and the input names of its errors follow; and listing a
catalog table in display order."""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import KEEP, check_slug, clean_description, clean_name, price_minor
from billing_graphql.services.platform.audit import record_change


def input_field(name: str, renamed: dict[str, str] | None = None) -> str:
    """The GraphQL input field an attribute is reported under: its camelCase name (or
    ``renamed[name]`` where the input calls it otherwise)."""
    if renamed and name in renamed:
        return renamed[name]
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def record_catalog_change(session: AsyncSession, actor: Actor | None, action: str, row: Any, *, now: Any,
                          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """The audit row and outbox event of a change to a catalog row (``Plan``, ``Addon``,
    ``Coupon``: its class names the object type); the catalog belongs to no organization."""
    record_change(session, actor=actor, action=action, object_type=type(row).__name__, object_id=row.id,
                  organization_id=None, now=now, before=before, after=after, subject=row)


def patch_of(spec: type, name: str, doc: str) -> type:
    """The patch type of a spec: the spec's every field, ``KEEP`` (unchanged) unless given."""
    patch = make_dataclass(name, [(f.name, Any, field(default=KEEP)) for f in fields(spec)], frozen=True)
    patch.__doc__ = doc
    patch.__module__ = spec.__module__
    return patch


def audited_fields(spec: type, *, extra: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The columns an audit row keeps of a catalog row: its id and its spec's fields."""
    return ("id", *(f.name for f in fields(spec) if f.name not in without), *extra)


def catalog_rows(model: Any, order_of: Callable[[], tuple], include_inactive: bool, currency: str | None) -> Any:
    """Rows of ``model`` in the order ``order_of()`` gives: active ones only unless ``include_inactive``; in one
    ``currency`` when given (already checked)."""
    statement = select(model).order_by(*order_of())
    if not include_inactive:
        statement = statement.where(model.is_active.is_(True))
    if currency is not None:
        statement = statement.where(model.currency == currency)
    return statement


_TEXT_CHECKS = {"name": clean_name, "slug": check_slug, "description": clean_description}


def checked_columns(patch: Any, touched: set[str], *, currency: str, prices: tuple[str, ...]) -> dict[str, Any]:
    """A patch's name, slug, description and prices (in minor units of ``currency``), checked,
    for the fields it touches."""
    columns = {name: check(getattr(patch, name)) for name, check in _TEXT_CHECKS.items() if name in touched}
    columns.update({name: price_minor(getattr(patch, name), currency, input_field(name))
                    for name in prices if name in touched})
    return columns
