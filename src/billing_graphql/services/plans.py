"""Reading the plan catalog."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Plan
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation


def plan_order():
    return (Plan.sort_order, Plan.base_price_monthly, Plan.name, Plan.id)


async def list_plans(db: Database, *, include_inactive: bool) -> list[Plan]:
    statement = select(Plan).order_by(*plan_order())
    if not include_inactive:
        statement = statement.where(Plan.is_active.is_(True))
    async with db.read() as session:
        return list((await session.scalars(statement)).all())


async def get_plan(
    db: Database, *, plan_id: uuid.UUID | None = None, slug: str | None = None, include_inactive: bool
) -> Plan:
    if (plan_id is None) == (slug is None):
        raise validation("Give exactly one of 'id' and 'slug'.", "id")
    statement = select(Plan)
    statement = statement.where(Plan.id == plan_id) if plan_id is not None else statement.where(Plan.slug == slug)
    if not include_inactive:
        statement = statement.where(Plan.is_active.is_(True))
    async with db.read() as session:
        plan = await session.scalar(statement)
    if plan is None:
        raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field="id" if plan_id else "slug")
    return plan
