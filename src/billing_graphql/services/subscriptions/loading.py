"""Loading what subscription use cases work on, inside the caller's locked transaction: the
live subscription, the plan asked for, and a new subscription row (one live per organization)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Organization, Plan, Subscription
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod, period_at
from billing_graphql.domain.status import SubscriptionStatus


def live_subscription_statement(organization_id: Any) -> Any:
    """The organization's live subscription (at most one: not canceled), of ``organization_id`` (a value or a bind
    parameter): what ``live_subscription`` reads, and the row the SQL tier writes ``subscription`` from. Live is
    any status but CANCELED (``domain.status.LIVE_STATUSES``), compared as one value: SQLAlchemy finishes a list's
    ``IN`` at execution, which a statement compiled once over bind parameters does not allow."""
    return select(Subscription).where(
        Subscription.organization_id == organization_id,
        Subscription.status != SubscriptionStatus.CANCELED,
    )


# Made once: building the statement and its cache key cost more than a tenth of a millisecond a read.
_LIVE_SUBSCRIPTION = live_subscription_statement(bindparam("organization_id"))


async def live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> Subscription | None:
    return await session.scalar(_LIVE_SUBSCRIPTION, {"organization_id": organization_id})


async def require_live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> Subscription:
    """The live subscription; SUBSCRIPTION_CANCELED when only canceled ones exist, else NO_SUBSCRIPTION."""
    subscription = await live_subscription(session, organization_id)
    if subscription is not None:
        return subscription
    canceled = await session.scalar(
        select(Subscription.id).where(
            Subscription.organization_id == organization_id, Subscription.status == SubscriptionStatus.CANCELED
        ).limit(1)
    )
    if canceled is not None:
        raise BillingError(BillingErrorCode.SUBSCRIPTION_CANCELED,
                           "The subscription is canceled; subscribe again to start a new one.")
    raise BillingError(BillingErrorCode.NO_SUBSCRIPTION, "The organization has no subscription.")


async def resolve_plan(session: AsyncSession, plan_id: uuid.UUID | None, field_name: str = "planId", *,
                       currency: str | None = None) -> Plan:
    """The plan asked for (PLAN_NOT_FOUND / PLAN_NOT_AVAILABLE), or the default one: the cheapest
    active plan in ``currency`` (the organization's), then by sort order."""
    if plan_id is None:
        statement = select(Plan).where(Plan.is_active.is_(True))
        if currency is not None:
            statement = statement.where(Plan.currency == currency)
        plan = await session.scalar(
            statement.order_by(Plan.base_price_monthly, Plan.sort_order, Plan.name, Plan.id).limit(1)
        )
        if plan is None:
            where = f" in {currency}" if currency else ""
            raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, f"There is no active plan{where} to subscribe to.",
                               field=field_name)
        return plan
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field=field_name)
    if not plan.is_active:
        raise BillingError(BillingErrorCode.PLAN_NOT_AVAILABLE, f"The plan {plan.name!r} is not available.",
                           field=field_name)
    return plan


async def new_subscription(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    plan: Plan,
    billing_period: BillingPeriod,
    agents: int,
    trial: bool,
    payment_gateway: str,
    now: datetime,
) -> Subscription:
    """A new subscription row, added and flushed (the one-live-per-organization index checks it).

    ``trial``: TRIALING for the plan's trial days, the trial being the first period and paid
    periods anchored on its end. Otherwise ACTIVE, anchored ``now``, in its first paid period.
    Used by ``subscribe`` and by checkout confirmation. A Stripe-backed subscription carries the
    organization's Stripe Customer id (``gatewayCustomerId``).
    """
    customer_id = None
    if payment_gateway == "stripe":
        customer_id = await session.scalar(select(Organization.gateway_customer_id)
                                           .where(Organization.id == organization_id))
    if trial:
        trial_end = now + timedelta(days=plan.trial_days)
        anchor, period_start, period_end = trial_end, now, trial_end
    else:
        first = period_at(now, billing_period, 0)
        anchor, period_start, period_end, trial_end = now, first.start, first.end, None
    subscription = Subscription(
        id=uuid.uuid4(),
        organization_id=organization_id,
        plan_id=plan.id,
        plan_version=plan.version,
        status=SubscriptionStatus.TRIALING if trial else SubscriptionStatus.ACTIVE,
        billing_period=billing_period,
        period_anchor=anchor,
        current_period_start=period_start,
        current_period_end=period_end,
        trial_ends_at=trial_end,
        cancel_at_period_end=False,
        agent_count=agents,
        payment_gateway=payment_gateway,
        gateway_customer_id=customer_id,
        retry_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription


def is_live_conflict(exc: IntegrityError) -> bool:
    """Whether an insert lost the race for the one live subscription of an organization."""
    text = str(exc.orig)
    return "uq_subscriptions_one_live_per_organization" in text or "subscriptions.organization_id" in text


def already_subscribed() -> BillingError:
    return BillingError(BillingErrorCode.ALREADY_SUBSCRIBED,
                        "The organization already has a live subscription; change its plan instead.")


@contextmanager
def one_live_subscription() -> Iterator[None]:
    """Around a unit of work that starts a subscription: an insert that lost the race for the
    organization's one live subscription (the unique index, at flush or commit) is
    ALREADY_SUBSCRIBED."""
    try:
        yield
    except IntegrityError as exc:
        if is_live_conflict(exc):
            raise already_subscribed() from None
        raise
