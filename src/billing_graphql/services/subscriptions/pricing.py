"""A subscription's recurring price: plan, seats and add-ons as the domain prices them.

Seat billing: the billed agent count is the organization's ``agents`` gauge (usage counter with
period key "current") when one exists, else the subscription's stored ``agent_count`` (1 for a
new one). It is copied onto the subscription whenever the subscription is priced (subscribe, a
plan or add-on change), so ``agent_count`` is always what the current period was billed for,
and a later change credits exactly that.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Addon, AddonUnit, Metric, Plan, PlanVersion, SubscriptionAddon, UsageCounter
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.proration import AddonPrice, PlanPrice, Recurring, billed_agents


def agents_gauge(organization_id: Any) -> Select:
    """The organization's ``agents`` gauge (its ``current`` counter), of ``organization_id`` (a value or a column)."""
    return (select(UsageCounter.value)
            .join(Metric, Metric.id == UsageCounter.metric_id)
            .where(UsageCounter.organization_id == organization_id, Metric.code == "agents",
                   UsageCounter.period_key == "current"))


async def current_agents(session: AsyncSession, organization_id: uuid.UUID, fallback: int) -> int:
    """The billed agent count (``domain.proration.billed_agents``): the gauge, else ``fallback``."""
    value = await session.scalar(agents_gauge(organization_id))
    return billed_agents(None if value is None else int(value), fallback)


def plan_price(plan: Plan) -> PlanPrice:
    """The prices of ``plan``'s current version (its row): for a new subscription or a catalog view."""
    return PlanPrice(plan.name, plan.currency, plan.base_price_monthly, plan.base_price_annual,
                     plan.per_agent_price, plan.included_agents)


def frozen_version(plan_id: Any, number: Any) -> Select:
    """The frozen ``plan_versions`` row of a plan's older version ``number`` (values or bind parameters)."""
    return select(PlanVersion).where(PlanVersion.plan_id == plan_id, PlanVersion.number == number)


def version_price_of(plan: Plan, version: int, frozen: PlanVersion | None) -> PlanPrice:
    """The prices of version ``version`` of ``plan``: the row's for its current version, else those of ``frozen``,
    its ``plan_versions`` row (``frozen_version``; ``domain.plan_versions``)."""
    if version >= plan.version:
        return plan_price(plan)
    return PlanPrice(plan.name, plan.currency, frozen.base_price_monthly, frozen.base_price_annual,
                     frozen.per_agent_price, plan.included_agents)


async def version_price(session: AsyncSession, plan: Plan, version: int) -> PlanPrice:
    """The prices of version ``version`` of ``plan`` (``version_price_of``), its frozen row read only for an older
    version. What a subscription pays is read here."""
    older = version < plan.version
    return version_price_of(plan, version, await session.scalar(frozen_version(plan.id, version)) if older else None)


def addon_price(addon: Addon, quantity: int) -> AddonPrice:
    return AddonPrice(addon.name, addon.price_monthly, addon.price_annual, quantity,
                      per_agent=addon.unit is AddonUnit.PER_AGENT)


def attached_addons_statement(subscription_id: Any) -> Select:
    """A subscription's attachments with their add-ons, in the add-ons' order (sort order, name, id)."""
    return (select(SubscriptionAddon, Addon)
            .join(Addon, Addon.id == SubscriptionAddon.addon_id)
            .where(SubscriptionAddon.subscription_id == subscription_id)
            .order_by(Addon.sort_order, Addon.name, Addon.id))


async def attached_addons(session: AsyncSession, subscription_id: uuid.UUID) -> list[tuple[SubscriptionAddon, Addon]]:
    rows = await session.execute(attached_addons_statement(subscription_id))
    return [(attached, addon) for attached, addon in rows.all()]


def recurring(plan: Plan | PlanPrice, billing_period: BillingPeriod, agents: int,
              addons: list[tuple[SubscriptionAddon, Addon]]) -> Recurring:
    """``plan``: a plan (its current version's prices) or a version's prices (``version_price``)."""
    return Recurring(plan if isinstance(plan, PlanPrice) else plan_price(plan), billing_period, agents,
                     tuple(addon_price(addon, attached.quantity) for attached, addon in addons))
