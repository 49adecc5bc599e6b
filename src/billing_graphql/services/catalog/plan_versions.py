"""Making a new version of a plan in use (``domain.plan_versions``): freeze the current prices in
``plan_versions``, number the new ones, and move live subscriptions at renewal when asked.

Where a subscription's prices are read back: ``services.subscriptions.pricing.version_price``
(base, annual, per agent) and ``services.billing.usage_charges`` (the charges of its version)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Plan, PlanVersion, Subscription
from billing_graphql.domain.plan_versions import ApplyTo
from billing_graphql.domain.status import SubscriptionStatus


def _live_on(plan_id: uuid.UUID):
    return (Subscription.plan_id == plan_id) & (Subscription.status != SubscriptionStatus.CANCELED)


async def count_live_subscriptions(session: AsyncSession, plan_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(Subscription).where(_live_on(plan_id))) or 0)


async def start_version(session: AsyncSession, plan: Plan, apply_to: ApplyTo, *, now: datetime) -> int:
    """Freeze ``plan``'s current prices as its version ``plan.version`` and return the next number
    (the caller writes the new prices and charges under it). AT_RENEWAL: every live subscription
    on the plan moves to it at its next renewal (through the ORM, so the MRR history sees it)."""
    session.add(PlanVersion(id=uuid.uuid4(), plan_id=plan.id, number=plan.version,
                            base_price_monthly=plan.base_price_monthly, base_price_annual=plan.base_price_annual,
                            per_agent_price=plan.per_agent_price, created_at=now))
    number = plan.version + 1
    if apply_to is ApplyTo.AT_RENEWAL:
        for subscription in (await session.scalars(select(Subscription).where(_live_on(plan.id)))).all():
            subscription.pending_plan_version = number
            subscription.updated_at = now
    return number
