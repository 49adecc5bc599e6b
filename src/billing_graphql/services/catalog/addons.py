"""Add-ons: extras a subscription can attach (FLAT per period, or PER_AGENT per seat)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Addon, AddonUnit, SubscriptionAddon
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import (
    INT_MAX,
    annual_price_default,
    check_currency,
    check_int_range,
    check_slug,
    clean_description,
    clean_name,
    given,
    price_minor,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.services.catalog.shared import (
    audited_fields, checked_columns, input_field, patch_of, record_catalog_change,
)
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.catalog.metrics import not_null
from billing_graphql.services.platform.writes import already_exists, unique_write

PRICE_FIELDS = ("price_monthly", "price_annual")

@dataclass(frozen=True)
class AddonSpec:
    name: str
    slug: str
    price_monthly: Decimal
    currency: str = "IDR"
    price_annual: Decimal | None = None  # default: ten months of the monthly price
    unit: AddonUnit = AddonUnit.FLAT
    description: str = ""
    is_active: bool = True
    sort_order: int = 0


AddonPatch = patch_of(AddonSpec, "AddonPatch", """Changes to an add-on: a field left as ``KEEP`` keeps its value.""")
ADDON_FIELDS = audited_fields(AddonSpec)


def addon_order():
    return (Addon.sort_order, Addon.price_monthly, Addon.name, Addon.id)


def _slug_exists(slug: str) -> BillingError:
    return already_exists("An add-on with slug", slug, "slug")


def _sort_order(value: int) -> int:
    return check_int_range(value, "sortOrder", low=-INT_MAX, high=INT_MAX, what="sortOrder")


async def _slug_taken(session: AsyncSession, slug: str, other_than: uuid.UUID | None = None) -> bool:
    statement = select(Addon.id).where(Addon.slug == slug)
    if other_than is not None:
        statement = statement.where(Addon.id != other_than)
    return await session.scalar(statement) is not None


async def create_addon(db: Database, actor: Actor | None, spec: AddonSpec, *, now: datetime) -> Addon:
    currency = check_currency(spec.currency)
    monthly = price_minor(spec.price_monthly, currency, "priceMonthly")
    addon = Addon(
        id=uuid.uuid4(),
        name=clean_name(spec.name),
        slug=check_slug(spec.slug),
        description=clean_description(spec.description),
        currency=currency,
        price_monthly=monthly,
        price_annual=(
            annual_price_default(monthly)
            if spec.price_annual is None
            else price_minor(spec.price_annual, currency, "priceAnnual")
        ),
        unit=spec.unit,
        is_active=bool(spec.is_active),
        sort_order=_sort_order(spec.sort_order),
        created_at=now,
        updated_at=now,
    )
    async with unique_write(db, "slug", lambda: _slug_exists(addon.slug)) as session:
        if await _slug_taken(session, addon.slug):
            raise _slug_exists(addon.slug)
        session.add(addon)
        after = snapshot(addon, *ADDON_FIELDS)
        record_catalog_change(session, actor, "addon.created", addon, now=now, after=after)
    return addon


async def update_addon(
    db: Database, actor: Actor | None, addon_id: uuid.UUID, patch: AddonPatch, *, now: datetime
) -> Addon:
    """Change the fields given; a field left out keeps its value. Audited as ``addon.updated``."""
    touched = {f.name for f in fields(patch) if given(getattr(patch, f.name))}
    for name in touched - {"description"}:
        not_null(getattr(patch, name), input_field(name))
    async with unique_write(db, "slug", lambda: _slug_exists(str(patch.slug))) as session:
        addon = await session.scalar(select(Addon).where(Addon.id == addon_id).with_for_update())
        if addon is None:
            raise BillingError(BillingErrorCode.ADDON_NOT_FOUND, "Add-on not found.", field="id")
        currency = addon.currency
        columns: dict[str, Any] = {}
        if "currency" in touched:
            currency = check_currency(patch.currency)
            if currency != addon.currency:
                missing = [input_field(name) for name in PRICE_FIELDS if name not in touched]
                if missing:
                    raise validation(
                        "Changing an add-on's currency needs every price in the new currency"
                        f" (missing: {', '.join(missing)}).",
                        "currency",
                    )
                attached = await session.scalar(
                    select(exists().where(SubscriptionAddon.addon_id == addon.id))
                )
                if attached:
                    raise validation(
                        "This add-on is attached to subscriptions; its currency cannot change.", "currency"
                    )
            columns["currency"] = currency
        columns.update(checked_columns(patch, touched, currency=currency, prices=PRICE_FIELDS))
        if "unit" in touched:
            columns["unit"] = patch.unit
        if "is_active" in touched:
            columns["is_active"] = bool(patch.is_active)
        if "sort_order" in touched:
            columns["sort_order"] = _sort_order(patch.sort_order)
        changed = {name: value for name, value in columns.items() if getattr(addon, name) != value}
        if not changed:
            return addon
        if "slug" in changed and await _slug_taken(session, changed["slug"], other_than=addon.id):
            raise _slug_exists(changed["slug"])
        before = snapshot(addon, *ADDON_FIELDS)
        for name, value in changed.items():
            setattr(addon, name, value)
        addon.updated_at = now
        after = snapshot(addon, *ADDON_FIELDS)
        record_catalog_change(session, actor, "addon.updated", addon, now=now, before=before, after=after)
    return addon
