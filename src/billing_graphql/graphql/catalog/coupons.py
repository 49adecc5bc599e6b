"""Root fields for coupons: super-admins list, create and change them; tenants check a code."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from billing_graphql.graphql.columns import PythonAnswer, RootQuery, Statement
from billing_graphql.services.pagination import read_page

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import READERS, allow
from billing_graphql.graphql.catalog.coupon_values import discount_value_patch, naming_discount_value, split_discount
from billing_graphql.graphql.catalog.types import (
    CouponCheck,
    CouponConnection,
    CouponDuration,
    CouponType,
    DiscountType,
    check_message,
    coupon_check_row,
)
from billing_graphql.graphql.common import connection_from_page, decode_id, offset_after, page_size
from billing_graphql.graphql.ids import read_optional_id
from billing_graphql.graphql.inputs import patch_from_input, spec_from_input
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.services.catalog import coupons
from billing_graphql.services.catalog.coupons import CouponPatch, CouponSpec


def _plan_ids(global_ids: list[strawberry.ID]) -> list[uuid.UUID | None]:
    """Plan UUIDs; an ID of another type or a malformed one becomes None, which the service
    reports as an unknown plan at its index."""
    decoded: list[uuid.UUID | None] = []
    for global_id in global_ids:
        try:
            decoded.append(decode_id(global_id, "Plan"))
        except DomainBillingError:
            decoded.append(None)
    return decoded


@strawberry.input(
    description="A new coupon. discountValue is the percent (1-100) for PERCENTAGE, major units of `currency` for FIXED."
)
class CreateCouponInput:
    code: str = strawberry.field(description="Letters, digits, hyphens, underscores; stored upper-case.")
    discount_type: DiscountType
    discount_value: Decimal = strawberry.field(
        description="PERCENTAGE: the percent off, a whole number 1 to 100. FIXED: the amount off in major units."
    )
    currency: str | None = None
    duration: CouponDuration = CouponDuration.ONCE
    duration_in_months: int | None = strawberry.field(default=None, description="REPEATING only.")
    max_uses: int | None = strawberry.field(default=None, description="Null: no cap.")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    applicable_plan_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Empty: every plan."
    )
    name: str = ""
    is_active: bool = True


@strawberry.input(
    description="Changes to a coupon: a field left out keeps its value; null clears maxUses, validFrom, validUntil."
    " The code, discount and duration change only while the coupon is unredeemed."
)
class UpdateCouponInput:
    id: strawberry.ID
    code: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    discount_type: DiscountType | None = strawberry.UNSET
    discount_value: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="In the terms of the (new or stored) discountType."
    )
    currency: str | None = strawberry.UNSET
    duration: CouponDuration | None = strawberry.UNSET
    duration_in_months: int | None = strawberry.UNSET
    max_uses: int | None = strawberry.UNSET
    valid_from: datetime | None = strawberry.UNSET
    valid_until: datetime | None = strawberry.UNSET
    applicable_plan_ids: list[strawberry.ID] | None = strawberry.UNSET
    is_active: bool | None = strawberry.UNSET


CreateCouponPayload = node_payload("CreateCouponPayload", "coupon", CouponType)
UpdateCouponPayload = node_payload("UpdateCouponPayload", "coupon", CouponType)


def coupons_query(context: Any, first: int | None = 20, after: str | None = None,
                  is_active: bool | None = None) -> RootQuery:
    """The statement and page of ``coupons`` (the SQL tier wraps the same statement in JSON)."""
    return RootQuery(Statement(coupons.coupons_statement, (), (is_active,)), page_size(first, 20), offset_after(after))


async def coupon_check_query(context: Any, parent: Any, code: str,
                             plan_id: strawberry.ID | None = None) -> RootQuery | PythonAnswer:
    """The row the SQL tier writes ``coupon`` from (``graphql.sql_roots``): ``check_coupon_basis`` read first (the
    rules of the resolver's ``check_coupon``), its values bound as ``coupon_check_row``. A code refused without its
    coupon leaves nothing to read: its answer is ``from_result``'s, on the Python plan."""
    plan_uuid = read_optional_id(plan_id, "Plan", "planId")
    basis = await coupons.check_coupon_basis(context.db, code, plan_uuid, context.now, context.actor.is_super_admin)
    if basis.coupon_id is None:
        return PythonAnswer(CouponCheck.from_result(coupons.CouponCheck(basis.code, basis.refusal, None)))
    reason = None if basis.refusal is None else basis.refusal.name
    return RootQuery(Statement(coupon_check_row, (basis.code, reason, check_message(basis.refusal), basis.coupon_id)))


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(DomainRole.SUPER_ADMIN), description="Coupons, newest first.")
    async def coupons(
        self, info: Info, first: int | None = 20, after: str | None = None, is_active: bool | None = None
    ) -> CouponConnection | None:
        query = coupons_query(info.context, first, after, is_active)
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(CouponConnection, page, CouponType.from_row)

    @strawberry.field(
        extensions=allow(*READERS),
        description="Check a coupon code (for `planId` when given): whether it can be used, and its discount."
        " An unknown code tells nothing more than that.",
    )
    async def coupon(self, info: Info, code: str, plan_id: strawberry.ID | None = None) -> CouponCheck | None:
        context = info.context
        plan_uuid = read_optional_id(plan_id, "Plan", "planId")
        result = await coupons.check_coupon(
            context.db,
            code=code,
            now=context.now,
            plan_id=plan_uuid,
            include_inactive_plans=context.actor.is_super_admin,
        )
        return CouponCheck.from_result(result)


def _coupon_spec(input: CreateCouponInput) -> CouponSpec:
    percent_off, amount_off = split_discount(input.discount_type, input.discount_value)
    return spec_from_input(CouponSpec, input, percent_off=percent_off, amount_off=amount_off,
                           plan_ids=_plan_ids(input.applicable_plan_ids))


class _UpdateFields:
    """An update input seen with the service's field names (``plan_ids``, ``percent_off``/``amount_off``
    from ``discountValue``)."""

    def __init__(self, input: UpdateCouponInput, discount: dict[str, Any]) -> None:
        self._input = input
        self._discount = discount

    def __getattr__(self, name: str):
        if name == "plan_ids":
            return self._input.applicable_plan_ids
        if name in ("percent_off", "amount_off"):
            return self._discount.get(name, strawberry.UNSET)
        return getattr(self._input, name)


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN), description="Create a coupon.")
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> CreateCouponPayload | None:
        context = info.context
        async def create():
            return await coupons.create_coupon(context.db, context.actor, _coupon_spec(input), now=context.now)

        return await CreateCouponPayload.of(naming_discount_value(create()))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN), description="Change a coupon; fields left out keep their values."
    )
    async def update_coupon(self, info: Info, input: UpdateCouponInput) -> UpdateCouponPayload | None:
        context = info.context

        async def update():
            coupon_id = decode_id(input.id, "Coupon")
            discount: dict[str, Any] = {}
            if input.discount_value is not strawberry.UNSET:
                stored = None if input.discount_type else (await coupons.get_coupon(context.db, coupon_id)).discount_type
                discount = discount_value_patch(input.discount_type, input.discount_value, stored)
            patch = patch_from_input(CouponPatch, _UpdateFields(input, discount), {"plan_ids": _plan_ids})
            return await coupons.update_coupon(context.db, context.actor, coupon_id, patch, now=context.now)

        return await UpdateCouponPayload.of(naming_discount_value(update()))
