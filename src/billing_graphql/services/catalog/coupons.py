"""Coupons: created and changed by super-admins, checked by tenants.

A coupon's code, discount and duration are fixed once it has been redeemed (as Stripe's are):
change them only while ``current_uses`` is 0, or create a new coupon. ``current_uses`` is
written by redemption only (the subscription services), never here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Coupon, CouponPlan, Plan
from billing_graphql.db.prepared import Compiled
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import (
    CouponState,
    CouponTerms,
    DiscountKind,
    CouponDuration,
    check_currency,
    check_max_uses,
    check_validity_window,
    clean_name,
    coupon_refusal,
    coupon_terms,
    given,
    normalize_coupon_code,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.money import Money
from billing_graphql.domain.records import record_from
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.catalog.shared import audited_fields, input_field, patch_of, record_catalog_change
from billing_graphql.services.catalog.metrics import not_null
from billing_graphql.services.platform.writes import already_exists, unique_write
from billing_graphql.services.pagination import Page, fetch_page

TERM_FIELDS = ("code", "discount_type", "percent_off", "amount_off", "currency", "duration", "duration_in_months")
_RENAMED = {"plan_ids": "applicablePlanIds"}  # input names that are not the camelCase of the attribute
REQUIRED = ("code", "name", "discount_type", "duration", "is_active", "plan_ids")


@dataclass(frozen=True)
class CouponSpec:
    """A new coupon. ``amount_off`` is in major units of ``currency`` (FIXED only);
    ``plan_ids`` empty means every plan."""

    code: str
    discount_type: DiscountKind
    percent_off: int | None = None
    amount_off: Decimal | None = None
    currency: str | None = None
    duration: CouponDuration = CouponDuration.ONCE
    duration_in_months: int | None = None
    max_uses: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    plan_ids: Sequence[uuid.UUID] = ()
    name: str = ""
    is_active: bool = True


CouponPatch = patch_of(CouponSpec, "CouponPatch", """Changes to a coupon; ``KEEP`` keeps a field. None clears the
nullable ones (``maxUses``: no cap; ``validFrom``/``validUntil``: open-ended).""")
COUPON_FIELDS = audited_fields(CouponSpec, without=("plan_ids",), extra=("current_uses",))


@dataclass(frozen=True)
class CouponCheck:
    """The answer to "may I use this code (on this plan)?". ``coupon`` is set only when the
    coupon is usable now (perhaps on other plans): a hidden or unknown code reveals nothing."""

    code: str
    refusal: BillingErrorCode | None
    coupon: Coupon | None

    @property
    def valid(self) -> bool:
        return self.refusal is None


_TERM_NAMES = ("discount_type", "percent_off", "amount_off", "currency", "duration", "duration_in_months")


def _term_columns(terms: CouponTerms) -> dict[str, Any]:
    return {name: getattr(terms, name) for name in _TERM_NAMES}


def _code_exists(code: str) -> BillingError:
    return already_exists("A coupon with code", code, "code")


async def _check_plans(session: AsyncSession, plan_ids: Sequence[uuid.UUID | None]) -> list[uuid.UUID]:
    """The distinct plan ids, each of an existing plan (VALIDATION on the first unknown one)."""
    wanted = [plan_id for plan_id in plan_ids if plan_id is not None]
    found = set(
        (await session.scalars(select(Plan.id).where(Plan.id.in_(wanted)))).all() if wanted else []
    )
    distinct: list[uuid.UUID] = []
    for index, plan_id in enumerate(plan_ids):
        if plan_id is None or plan_id not in found:
            raise validation("Unknown plan.", f"applicablePlanIds[{index}]")
        if plan_id not in distinct:
            distinct.append(plan_id)
    return distinct


async def coupon_plan_ids(session: AsyncSession, coupon_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(CouponPlan.plan_id).where(CouponPlan.coupon_id == coupon_id).order_by(CouponPlan.plan_id)
    )
    return list(rows.all())


def _coupon_snapshot(coupon: Coupon, plan_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
    return {**snapshot(coupon, *COUPON_FIELDS), "plan_ids": sorted(str(plan_id) for plan_id in plan_ids)}


async def create_coupon(db: Database, actor: Actor | None, spec: CouponSpec, *, now: datetime) -> Coupon:
    """Create a coupon; its code is stored upper-case (unique whatever the case). Audited."""
    code = normalize_coupon_code(spec.code)
    terms = coupon_terms(**{name: getattr(spec, name) for name in _TERM_NAMES})
    check_validity_window(spec.valid_from, spec.valid_until)
    if spec.valid_until is not None and spec.valid_until <= now:
        raise validation("validUntil is in the past; the coupon could never be used.", "validUntil")
    coupon = Coupon(
        id=uuid.uuid4(),
        code=code,
        name=clean_name(spec.name, "name") if spec.name.strip() else "",
        max_uses=check_max_uses(spec.max_uses),
        current_uses=0,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        is_active=bool(spec.is_active),
        created_at=now,
        updated_at=now,
        **_term_columns(terms),
    )
    async with unique_write(db, "code", lambda: _code_exists(code)) as session:
        plan_ids = await _check_plans(session, list(spec.plan_ids))
        if await session.scalar(select(Coupon.id).where(Coupon.code == code)) is not None:
            raise _code_exists(code)
        session.add(coupon)
        await session.flush()  # the coupon_plans rows reference it
        session.add_all(CouponPlan(coupon_id=coupon.id, plan_id=plan_id) for plan_id in plan_ids)
        after = _coupon_snapshot(coupon, plan_ids)
        record_catalog_change(session, actor, "coupon.created", coupon, now=now, after=after)
    return coupon


async def update_coupon(
    db: Database, actor: Actor | None, coupon_id: uuid.UUID, patch: CouponPatch, *, now: datetime
) -> Coupon:
    """Change the fields given. The code and the discount terms change only while the coupon
    is unredeemed; ``maxUses`` never drops below the redemptions made. Audited."""
    touched = {f.name for f in fields(patch) if given(getattr(patch, f.name))}
    for name in touched & set(REQUIRED):
        not_null(getattr(patch, name), input_field(name, _RENAMED))
    async with unique_write(db, "code", lambda: _code_exists(str(patch.code).upper())) as session:
        # Locked: a concurrent redemption cannot slip between the uses check and the write.
        coupon = await session.scalar(select(Coupon).where(Coupon.id == coupon_id).with_for_update())
        if coupon is None:
            raise not_found("Coupon")
        stored_plans = await coupon_plan_ids(session, coupon.id)
        before = _coupon_snapshot(coupon, stored_plans)
        columns: dict[str, Any] = {}
        if "code" in touched:
            columns["code"] = normalize_coupon_code(patch.code)
        if touched & {"discount_type", "percent_off", "amount_off", "currency", "duration", "duration_in_months"}:
            columns.update(_merged_terms(coupon, patch, touched))
        if coupon.current_uses > 0:
            for name in TERM_FIELDS:
                if name in columns and columns[name] != getattr(coupon, name):
                    raise validation(
                        f"This coupon has been redeemed {coupon.current_uses} time(s): its code, discount and"
                        " duration are fixed. Create a new coupon instead.",
                        input_field(name, _RENAMED),
                    )
        if "name" in touched:
            columns["name"] = clean_name(patch.name) if patch.name.strip() else ""
        if "max_uses" in touched:
            columns["max_uses"] = check_max_uses(patch.max_uses, coupon.current_uses)
        if "valid_from" in touched:
            columns["valid_from"] = patch.valid_from
        if "valid_until" in touched:
            columns["valid_until"] = patch.valid_until
        check_validity_window(
            columns.get("valid_from", coupon.valid_from), columns.get("valid_until", coupon.valid_until)
        )
        if "is_active" in touched:
            columns["is_active"] = bool(patch.is_active)
        plan_ids = stored_plans
        if "plan_ids" in touched:
            plan_ids = sorted(await _check_plans(session, list(patch.plan_ids)))
        changed = {name: value for name, value in columns.items() if getattr(coupon, name) != value}
        plans_changed = sorted(plan_ids) != sorted(stored_plans)
        if not changed and not plans_changed:
            return coupon
        if "code" in changed and await session.scalar(
            select(Coupon.id).where(Coupon.code == changed["code"], Coupon.id != coupon.id)
        ):
            raise _code_exists(changed["code"])
        for name, value in changed.items():
            setattr(coupon, name, value)
        coupon.updated_at = now
        if plans_changed:
            await session.execute(delete(CouponPlan).where(CouponPlan.coupon_id == coupon.id))
            await session.flush()
            session.add_all(CouponPlan(coupon_id=coupon.id, plan_id=plan_id) for plan_id in plan_ids)
        after = _coupon_snapshot(coupon, plan_ids)
        record_catalog_change(session, actor, "coupon.updated", coupon, now=now, before=before, after=after)
    return coupon


def _merged_terms(coupon: Coupon, patch: CouponPatch, touched: set[str]) -> dict[str, Any]:
    """The coupon's terms with the patch applied, checked as a whole. Switching the discount
    type drops the other type's fields unless given; leaving REPEATING drops the months."""
    discount_type = patch.discount_type if "discount_type" in touched else coupon.discount_type
    switched = discount_type != coupon.discount_type
    stored_amount = (
        Money(coupon.amount_off, coupon.currency).amount
        if coupon.amount_off is not None and coupon.currency is not None
        else None
    )
    percent_off = patch.percent_off if "percent_off" in touched else (None if switched else coupon.percent_off)
    amount_off = patch.amount_off if "amount_off" in touched else (None if switched else stored_amount)
    currency = patch.currency if "currency" in touched else (None if switched else coupon.currency)
    if "currency" in touched and currency is not None:
        currency = check_currency(currency)
        if "amount_off" not in touched and stored_amount is not None and currency != coupon.currency:
            # The stored amount is in the old currency's units: it must be given again.
            raise validation("Changing a FIXED coupon's currency needs amountOff in the new currency.", "amountOff")
    duration = patch.duration if "duration" in touched else coupon.duration
    if "duration_in_months" in touched:
        months = patch.duration_in_months
    elif duration is CouponDuration.REPEATING:
        months = coupon.duration_in_months
    else:
        months = None
    return _term_columns(coupon_terms(discount_type=discount_type, percent_off=percent_off, amount_off=amount_off,
                                      currency=currency, duration=duration, duration_in_months=months))


async def get_coupon(db: Database, coupon_id: uuid.UUID) -> Coupon:
    """One coupon by id; NOT_FOUND when there is none."""
    async with db.read() as session:
        coupon = await session.get(Coupon, coupon_id)
    if coupon is None:
        raise not_found("Coupon", "id")
    return coupon


async def list_coupons(
    db: Database, *, first: int, offset: int, is_active: bool | None = None
) -> Page[Coupon]:
    """Coupons, newest first, paged in SQL."""
    async with db.read() as session:
        return await fetch_page(session, coupons_statement(is_active), first=first, offset=offset)


def coupons_statement(is_active: bool | None = None) -> Any:
    """Coupons, newest first (only active or inactive ones when ``is_active`` is given)."""
    statement = select(Coupon).order_by(Coupon.created_at.desc(), Coupon.id.desc())
    if is_active is not None:
        statement = statement.where(Coupon.is_active.is_(is_active))
    return statement


def matched_code(code: str) -> tuple[str, bool]:
    """``code`` as coupons are matched (trimmed, upper-case), and whether it is well-formed: a malformed code is
    COUPON_INVALID without a read."""
    try:
        return normalize_coupon_code(code), True
    except BillingError:
        return (code or "").strip().upper(), False


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """What a coupon check reads of the plan asked about."""

    id: uuid.UUID
    is_active: bool
    currency: str


def check_decision(
    coupon: CouponState | None,
    plan: PlanTerms | Plan | None,
    *,
    now: datetime,
    plan_id: uuid.UUID | None,
    include_inactive_plans: bool,
) -> tuple[BillingErrorCode | None, bool]:
    """``check_coupon``'s rules over what it read (``coupon`` None: no coupon of the code; ``plan`` None: no plan of
    ``plan_id``): why the coupon cannot be used now (None: it can), and whether its discount is shown (it is usable
    now, perhaps on other plans only). An inactive plan is no plan unless ``include_inactive_plans``."""
    if coupon is None:
        return BillingErrorCode.COUPON_INVALID, False
    if plan is not None and not plan.is_active and not include_inactive_plans:
        plan = None
    refusal = coupon_refusal(coupon, now=now)
    if refusal is None and plan_id is not None:
        if plan is None:
            refusal = BillingErrorCode.PLAN_NOT_FOUND
        else:
            refusal = coupon_refusal(coupon, now=now, plan_id=plan.id, plan_currency=plan.currency)
    return refusal, refusal in (None, BillingErrorCode.COUPON_NOT_APPLICABLE, BillingErrorCode.PLAN_NOT_FOUND)


async def check_coupon(
    db: Database,
    *,
    code: str,
    now: datetime,
    plan_id: uuid.UUID | None = None,
    include_inactive_plans: bool = False,
) -> CouponCheck:
    """Whether ``code`` can be used now (on ``plan_id``). An unknown, inactive or not yet
    valid code gets the very same answer (COUPON_INVALID, no coupon)."""
    normalized, well_formed = matched_code(code)
    if not well_formed:
        return CouponCheck(code=normalized, refusal=BillingErrorCode.COUPON_INVALID, coupon=None)
    async with db.read() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.code == normalized))
        plan = await session.get(Plan, plan_id) if plan_id is not None else None
        plan_ids = await coupon_plan_ids(session, coupon.id) if coupon is not None else []
    state = coupon_state(coupon, plan_ids) if coupon is not None else None
    refusal, shown = check_decision(state, plan, now=now, plan_id=plan_id,
                                    include_inactive_plans=include_inactive_plans)
    return CouponCheck(code=normalized, refusal=refusal, coupon=coupon if shown else None)


# ``check_coupon``'s reads as one statement, for the compiled path's SQL tier: one row per plan the coupon of the
# code is limited to (one row without any), each with the plan of ``plan_id`` (NULLs where there is none).
_ONE_ROW = select(literal_column("1").label("one")).subquery("one_row")
# The coupon's columns ``CouponState`` is made of (its fields but the plans, which are rows of their own).
_STATE_FIELDS = tuple(item.name for item in fields(CouponState) if item.name != "plan_ids")
_CHECK_BASIS = Compiled(
    select(Coupon.id, *(getattr(Coupon, name) for name in _STATE_FIELDS), CouponPlan.plan_id, Plan.id,
           Plan.is_active, Plan.currency)
    .select_from(_ONE_ROW)
    .outerjoin(Coupon, Coupon.code == bindparam("code"))
    .outerjoin(CouponPlan, CouponPlan.coupon_id == Coupon.id)
    .outerjoin(Plan, Plan.id == bindparam("plan_id"))
)


@dataclass(frozen=True, slots=True)
class CouponCheckBasis:
    """``check_coupon``'s answer with the id of the coupon shown in place of its row (None: none shown)."""

    code: str
    refusal: BillingErrorCode | None
    coupon_id: uuid.UUID | None


async def check_coupon_basis(db: Database, code: str, plan_id: uuid.UUID | None, now: datetime,
                             include_inactive_plans: bool) -> CouponCheckBasis:
    """``check_coupon`` for the SQL tier, which writes the coupon shown itself: one statement on the driver's
    connection (none for a malformed code), the same rules (``check_decision``)."""
    normalized, well_formed = matched_code(code)
    if not well_formed:
        return CouponCheckBasis(normalized, BillingErrorCode.COUPON_INVALID, None)
    rows = await _CHECK_BASIS.on(db.engine.dialect).values(db, {"code": normalized, "plan_id": plan_id})
    coupon_id, *state, _, plan_key, plan_active, plan_currency = rows[0]
    coupon = None if coupon_id is None else coupon_state(
        SimpleNamespace(**dict(zip(_STATE_FIELDS, state, strict=True))),
        [row[1 + len(_STATE_FIELDS)] for row in rows if row[1 + len(_STATE_FIELDS)] is not None])
    plan = None if plan_key is None else PlanTerms(plan_key, plan_active, plan_currency)
    refusal, shown = check_decision(coupon, plan, now=now, plan_id=plan_id,
                                    include_inactive_plans=include_inactive_plans)
    return CouponCheckBasis(normalized, refusal, coupon_id if shown else None)


def coupon_state(coupon: Coupon, plan_ids: Sequence[uuid.UUID]) -> CouponState:
    """The domain's view of a coupon row, for ``domain.catalog.coupon_refusal``."""
    return record_from(CouponState, coupon, plan_ids=frozenset(plan_ids))
