"""Add-on and coupon types, and the answer to a tenant's coupon check."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from decimal import Decimal
from typing import Any, TypeVar

import strawberry
from sqlalchemy import String, Uuid
from strawberry import relay

from billing_graphql.db.models import Addon as AddonRow
from billing_graphql.db.models import AddonUnit as DomainAddonUnit
from billing_graphql.db.models import Coupon as CouponRow
from billing_graphql.domain.catalog import CouponDuration as DomainCouponDuration
from billing_graphql.domain.invoices import DiscountKind
from billing_graphql.domain.catalog import REFUSAL_MESSAGES, check_currency
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingErrorCode
from billing_graphql.db.models import Plan as PlanRow
from billing_graphql.graphql.columns import (
    Children, Parent, Statement, columns, computed, money, money_or_null, resolved, values_row,
)
from billing_graphql.graphql.common import Money, from_row, load_nodes
from billing_graphql.graphql.catalog.coupon_values import discount_value
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.services.catalog.coupons import CouponCheck as CouponCheckResult
from billing_graphql.services.catalog.shared import catalog_rows

AddonUnit = strawberry.enum(
    DomainAddonUnit, name="AddonUnit", description="FLAT: one price per period; PER_AGENT: per agent (seat)."
)
DiscountType = strawberry.enum(DiscountKind, name="DiscountType")
DEPRECATED = "Use discountValue."
C = TypeVar("C")
CouponDuration = strawberry.enum(
    DomainCouponDuration,
    name="CouponDuration",
    description="ONCE: the first invoice; REPEATING: `durationInMonths` months; FOREVER: every invoice.",
)


@strawberry.type(name="Addon", description="An extra a subscription can attach.")
class AddonType(relay.Node):
    id: relay.NodeID[str]
    name: str
    slug: str
    description: str
    currency: str
    price_monthly: Money
    price_annual: Money
    unit: AddonUnit
    is_active: bool
    sort_order: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: AddonRow) -> AddonType:
        return from_row(cls, row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        see_inactive = actor is not None and actor.is_super_admin
        return await load_nodes(info.context.loaders.addon_by_id, node_ids, cls.from_row,
                                lambda row: row.is_active or see_inactive)


def coupon_from_row(cls: type[C], row: CouponRow) -> C:
    """A coupon type (``Coupon``, ``CouponSummary``) from its row: its discount as Money and as
    ``discountValue``, the other fields as they are."""
    return from_row(cls, row)  # their computed fields: COUPON_FORMS


async def _applicable_plans(root: CouponType, info: Info) -> list[PlanType]:
    rows = await info.context.loaders.plans_by_coupon.load(root.row.id)
    return [PlanType.from_row(plan) for _, plan in rows]


@strawberry.type(name="Coupon", description="A discount code (super-admins' view).")
class CouponType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[CouponRow]
    code: str = strawberry.field(description="Upper-case; codes match whatever the case they are typed in.")
    name: str
    discount_type: DiscountType
    discount_value: Decimal = strawberry.field(
        description="PERCENTAGE: the percent off (1 to 100); FIXED: the amount off per invoice, in major units of "
                    "`currency`.")
    percent_off: int | None = strawberry.field(description="Percent off, 1 to 100 (PERCENTAGE coupons).",
                                               deprecation_reason=DEPRECATED)
    amount_off: Money | None = strawberry.field(description="Amount off per invoice (FIXED coupons).",
                                                deprecation_reason=DEPRECATED)
    currency: str | None = strawberry.field(description="The currency of a FIXED coupon's amount; null for PERCENTAGE.")
    duration: CouponDuration
    duration_in_months: int | None
    max_uses: int | None = strawberry.field(description="Null: no cap.")
    current_uses: int = strawberry.field(description="Redemptions so far (written by redemption only).")
    valid_from: datetime | None
    valid_until: datetime | None

    from_row = classmethod(coupon_from_row)

    applicable_plans: list[PlanType] = strawberry.field(
        resolver=_applicable_plans, description="The plans it applies to; empty: every plan."
    )
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        if actor is None or not actor.is_super_admin:
            return [None for _ in node_ids]
        return await load_nodes(info.context.loaders.coupon_by_id, node_ids, cls.from_row, lambda row: True)


columns(AddonType, AddonRow, price_monthly=money("price_monthly"), price_annual=money("price_annual"))
_PLAN_ORDER = ("sort_order", "base_price_monthly", "name", "id")  # services.catalog.plans.plan_order
# A coupon's discount fields, for every type built from its row (Coupon, CouponSummary, Subscription's AppliedCoupon):
# the constraints keep amount_off null on a PERCENTAGE coupon and percent_off null on a FIXED one.
COUPON_FORMS = dict(
    amount_off=money_or_null("amount_off"),
    discount_value=computed(lambda row, *parents: discount_value(row), lambda sql, row, *parents: (
        f"CASE WHEN {row}.discount_type = '{DiscountKind.PERCENTAGE.name}' THEN {sql.to_text(f'{row}.percent_off')} "
        f"ELSE {sql.money_amount(f'{row}.amount_off', f'{row}.currency')} END")),
)
columns(
    CouponType, CouponRow, **COUPON_FORMS,
    # plans_by_coupon: the coupon's plans in plan order
    applicable_plans=resolved(Children(
        PlanRow.__tablename__, None, ", ".join(_PLAN_ORDER),
        where=lambda plan, coupon: f"{plan}.id IN (SELECT plan_id FROM coupon_plans WHERE coupon_id = {coupon}.id)")),
)


@strawberry.type(description="What a tenant may know of a coupon: its discount, not its usage or other plans.")
class CouponSummary:
    code: str
    name: str
    discount_type: DiscountType
    discount_value: Decimal = strawberry.field(
        description="PERCENTAGE: the percent off (1 to 100); FIXED: the amount off per invoice, in major units of "
                    "`currency`.")
    percent_off: int | None = strawberry.field(deprecation_reason=DEPRECATED)
    amount_off: Money | None = strawberry.field(deprecation_reason=DEPRECATED)
    duration: CouponDuration
    duration_in_months: int | None
    valid_until: datetime | None

    from_row = classmethod(coupon_from_row)


columns(CouponSummary, CouponRow, **COUPON_FORMS)


def check_message(refusal: BillingErrorCode | None) -> str:
    """``CouponCheck.message``: why the code was refused, or that it can be used."""
    return REFUSAL_MESSAGES[refusal] if refusal else "This coupon can be used."


@strawberry.type(description="Whether a coupon code can be used now (on the plan asked about).")
class CouponCheck:
    code: str = strawberry.field(description="The code as it is matched (upper-case).")
    valid: bool
    reason: BillingErrorCode | None = strawberry.field(
        description="Why not: COUPON_INVALID, COUPON_EXPIRED, COUPON_EXHAUSTED, COUPON_NOT_APPLICABLE, PLAN_NOT_FOUND."
    )
    message: str
    coupon: CouponSummary | None = strawberry.field(
        description="The discount, when the coupon is usable now (possibly on other plans only)."
    )

    @classmethod
    def from_result(cls, result: CouponCheckResult) -> CouponCheck:
        return cls(
            code=result.code,
            valid=result.valid,
            reason=result.refusal,
            message=check_message(result.refusal),
            coupon=CouponSummary.from_row(result.coupon) if result.coupon is not None else None,
        )


# ``coupon`` on the SQL tier (``graphql.sql_roots``): its row is ``coupon_check_row``, the values of
# ``services.catalog.coupons.check_coupon_basis`` (the code, the refusal and the coupon shown, found by the same rules as
# ``check_coupon`` in Python); the database writes the coupon shown (``CouponSummary``'s forms). ``from_result`` is the
# Python form; the differential tests hold the two to the same bytes.

def coupon_check_row(code: Any, reason: Any, message: Any, coupon_id: Any) -> Any:
    """``coupon``'s row: the code as matched, the refusal (the enum's name; None: usable), its message, and the id of
    the coupon shown (None: none)."""
    return values_row(("code", code, String), ("reason", reason, String), ("message", message, String),
                      ("coupon_id", coupon_id, Uuid))


columns(
    CouponCheck, CouponRow,
    code=resolved(lambda sql, row, *parents: f"{row}.code"),
    valid=resolved(lambda sql, row, *parents: f"({row}.reason IS NULL)"),
    reason=resolved(lambda sql, row, *parents: f"{row}.reason"),
    message=resolved(lambda sql, row, *parents: f"{row}.message"),
    coupon=resolved(Parent(CouponRow.__tablename__, None, where=lambda coupon, row: f"{coupon}.id = {row}.coupon_id")),
)


@strawberry.type
class CouponConnection(relay.Connection[CouponType]):
    """Coupons, newest first."""


def catalog_source(model: Any, order_of: Callable[[], tuple], include_inactive: bool, currency: str | None) -> Statement:
    """What ``plans`` and ``addons`` list (``services.catalog.shared.catalog_rows``), the currency checked here:
    the SQL tier makes the statement once for each model, flag and currency given or not."""
    checked = None if currency is None else check_currency(currency)
    return Statement(catalog_rows, (checked,), (model, order_of, include_inactive))
