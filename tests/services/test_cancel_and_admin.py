"""cancel, resume and the super-admin patch."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import AuditEvent, OutboxEvent
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.subscriptions.plan_changes import Effective, change_plan
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, resume, subscribe, update_subscription
from tests.factories import database_state, expect_unchanged, make_payment_method, make_plan
from tests.helpers import T0

ADMIN = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="api_key:admin")


async def start(db, org, settings, *, trial_days=0):
    plan = await make_plan(db, trial_days=trial_days)
    await make_payment_method(db, org.id)
    return (await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                            payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings),
                            now=T0)).subscription


async def events(db) -> list[str]:
    async with db.read() as session:
        # Events of one instant in the order they were written (their ids are ordered): by time alone,
        # PostgreSQL may return a tie either way (it failed so once in the full suite).
        return list((await session.scalars(select(OutboxEvent.event_type)
                                           .order_by(OutboxEvent.created_at, OutboxEvent.id))).all())


async def test_cancel_at_period_end_then_resume(db, org, app_settings):
    await start(db, org, app_settings)
    later = T0 + timedelta(days=3)
    sub = (await cancel(db, None, organization_id=org.id, immediately=False, reason="too expensive", now=later)).subscription
    assert (sub.status, sub.cancel_at_period_end, sub.cancel_reason, sub.canceled_at) == (
        SubscriptionStatus.ACTIVE, True, "too expensive", later)
    # a second request changes nothing and writes nothing
    before = await database_state(db)
    await cancel(db, None, organization_id=org.id, immediately=False, reason="again", now=later)
    assert await database_state(db) == before
    sub = (await resume(db, None, organization_id=org.id, now=later)).subscription
    assert (sub.cancel_at_period_end, sub.canceled_at, sub.cancel_reason) == (False, None, None)
    assert (await events(db)).count("subscription.updated") == 2
    await expect_unchanged(db, BillingErrorCode.NOT_PENDING_CANCELLATION, resume(db, None, organization_id=org.id, now=later))


async def test_resume_after_the_period_ended_is_refused(db, org, app_settings):
    sub = await start(db, org, app_settings)
    await cancel(db, None, organization_id=org.id, immediately=False, reason=None, now=T0)
    await expect_unchanged(db, BillingErrorCode.SUBSCRIPTION_CANCELED,
                           resume(db, None, organization_id=org.id, now=sub.current_period_end))


async def test_cancel_immediately(db, org, app_settings):
    await start(db, org, app_settings, trial_days=14)
    await change_plan(db, None, organization_id=org.id, plan_id=(await make_plan(db)).id, billing_period=None,
                      effective=Effective.PERIOD_END, gateways=GatewayRegistry(app_settings), now=T0)
    sub = (await cancel(db, None, organization_id=org.id, immediately=True, reason="closing", now=T0)).subscription
    assert (sub.status, sub.ended_at, sub.pending_plan_id, sub.cancel_at_period_end) == (
        SubscriptionStatus.CANCELED, T0, None, False)
    assert (await events(db))[-1] == "subscription.canceled"
    async with db.read() as session:
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "subscription.canceled"))
    assert audit.reason == "closing" and audit.before["status"] == "TRIALING"
    for call in (cancel(db, None, organization_id=org.id, immediately=True, reason=None, now=T0),
                 cancel(db, None, organization_id=org.id, immediately=False, reason=None, now=T0),
                 resume(db, None, organization_id=org.id, now=T0)):
        await expect_unchanged(db, BillingErrorCode.SUBSCRIPTION_CANCELED, call)


async def test_no_subscription(db, org):
    await expect_unchanged(db, BillingErrorCode.NO_SUBSCRIPTION,
                           cancel(db, None, organization_id=org.id, immediately=False, reason=None, now=T0))
    await expect_unchanged(db, BillingErrorCode.NO_SUBSCRIPTION, resume(db, None, organization_id=org.id, now=T0))


async def test_admin_status_override_needs_a_reason_and_a_legal_move(db, org, app_settings):
    sub = await start(db, org, app_settings)
    await expect_unchanged(db, BillingErrorCode.VALIDATION, update_subscription(
        db, ADMIN, subscription_id=sub.id, status=SubscriptionStatus.PAST_DUE, now=T0))
    await expect_unchanged(db, BillingErrorCode.INVALID_TRANSITION, update_subscription(
        db, ADMIN, subscription_id=sub.id, status=SubscriptionStatus.TRIALING, reason="why not", now=T0))
    result = await update_subscription(db, ADMIN, subscription_id=sub.id, status=SubscriptionStatus.PAST_DUE,
                                       reason="bank reversal", now=T0)
    assert result.subscription.status is SubscriptionStatus.PAST_DUE
    async with db.read() as session:
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "subscription.admin_updated"))
    assert (audit.actor, audit.reason, audit.before["status"], audit.after["status"]) == (
        "api_key:admin", "bank reversal", "ACTIVE", "PAST_DUE")


async def test_admin_extends_the_period_and_sets_gateway_ids(db, org, app_settings):
    sub = await start(db, org, app_settings, trial_days=14)
    new_end = sub.current_period_end + timedelta(days=7)
    result = await update_subscription(db, ADMIN, subscription_id=sub.id, current_period_end=new_end,
                                       payment_gateway="razorpay", gateway_customer_id="cust_1",
                                       gateway_subscription_id="sub_1", now=T0)
    updated = result.subscription
    assert (updated.current_period_end, updated.trial_ends_at, updated.period_anchor) == (new_end, new_end, new_end)
    assert (updated.payment_gateway, updated.gateway_customer_id, updated.gateway_subscription_id) == (
        "razorpay", "cust_1", "sub_1")
    await expect_unchanged(db, BillingErrorCode.VALIDATION, update_subscription(
        db, ADMIN, subscription_id=sub.id, current_period_end=new_end, now=T0))
    await expect_unchanged(db, BillingErrorCode.VALIDATION, update_subscription(
        db, ADMIN, subscription_id=sub.id, payment_gateway="paypal", now=T0))
    await expect_unchanged(db, BillingErrorCode.NOT_FOUND, update_subscription(
        db, ADMIN, subscription_id=uuid.uuid4(), payment_gateway="sandbox", now=T0))
    # nothing to change writes nothing
    before = await database_state(db)
    await update_subscription(db, ADMIN, subscription_id=sub.id, payment_gateway="razorpay", now=T0)
    assert await database_state(db) == before


async def test_admin_cancel_and_canceled_is_final(db, org, app_settings):
    sub = await start(db, org, app_settings)
    result = await update_subscription(db, ADMIN, subscription_id=sub.id, status=SubscriptionStatus.CANCELED,
                                       reason="fraud", now=T0)
    assert result.subscription.status is SubscriptionStatus.CANCELED and result.subscription.ended_at == T0
    assert (await events(db))[-1] == "subscription.canceled"
    await expect_unchanged(db, BillingErrorCode.SUBSCRIPTION_CANCELED, update_subscription(
        db, ADMIN, subscription_id=sub.id, status=SubscriptionStatus.ACTIVE, reason="undo", now=T0))
    await expect_unchanged(db, BillingErrorCode.SUBSCRIPTION_CANCELED, update_subscription(
        db, ADMIN, subscription_id=sub.id, gateway_customer_id="x", now=T0))
