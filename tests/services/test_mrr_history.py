"""db.mrr_history: the MRR history is written by the session listeners, whoever changes a
subscription, and only when MRR, status, plan or currency change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import Plan, Subscription, SubscriptionMrrRevision
from billing_graphql.db.mrr_history import backfill
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from billing_graphql.services.subscriptions.plan_changes import attach_addon, detach_addon
from tests.factories import make_addon, make_payment_method, make_plan

APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)


async def history(db, subscription_id=None) -> list[tuple]:
    async with db.read() as session:
        statement = select(SubscriptionMrrRevision).order_by(SubscriptionMrrRevision.valid_from)
        if subscription_id is not None:
            statement = statement.where(SubscriptionMrrRevision.subscription_id == subscription_id)
        rows = (await session.scalars(statement)).all()
    return [(r.status, r.mrr_minor, r.valid_from, r.valid_to) for r in rows]


async def started(db, org, settings, **plan):
    plan_row = await make_plan(db, currency="USD", monthly=3000, **plan)
    await make_payment_method(db, org.id)
    result = await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan_row.id, BillingPeriod.MONTHLY),
                             payment_method_id=None,
                             idempotency_key=None, gateways=GatewayRegistry(settings), now=APRIL_1)
    return plan_row, result.subscription


async def test_add_ons_attached_and_detached_move_the_mrr(db, org, app_settings):
    _, subscription = await started(db, org, app_settings)
    addon = await make_addon(db, currency="USD", monthly=400)
    later, latest = APRIL_1 + timedelta(days=5), APRIL_1 + timedelta(days=9)
    await attach_addon(db, None, organization_id=org.id, addon_id=addon.id, quantity=2, gateways=GatewayRegistry(app_settings),
                       now=later)
    await detach_addon(db, None, organization_id=org.id, addon_id=addon.id, gateways=GatewayRegistry(app_settings), now=latest)
    A = SubscriptionStatus.ACTIVE
    assert await history(db, subscription.id) == [
        (A, 3000, APRIL_1, later), (A, 3800, later, latest), (A, 3000, latest, None)]


async def test_a_change_made_with_the_orm_anywhere_is_recorded_and_others_are_not(db, org, app_settings):
    _, subscription = await started(db, org, app_settings, per_agent=500, included_agents=1)
    later = APRIL_1 + timedelta(days=3)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.gateway_customer_id = "cus_123"  # not an MRR matter
        row.updated_at = later - timedelta(days=1)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.agent_count = 3  # two seats above the one included
        row.updated_at = later
    assert [(mrr, start) for _, mrr, start, _ in await history(db)] == [(3000, APRIL_1), (4000, later)]


async def test_two_changes_at_one_instant_leave_one_revision(db, org, app_settings):
    _, subscription = await started(db, org, app_settings)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.status = SubscriptionStatus.PAST_DUE
    assert await history(db) == [(SubscriptionStatus.PAST_DUE, 3000, APRIL_1, None)]


async def test_repricing_a_plan_reprices_its_live_subscriptions(db, org, app_settings):
    plan, subscription = await started(db, org, app_settings)
    later = APRIL_1 + timedelta(days=20)
    async with db.write() as session:
        row = await session.get(Plan, plan.id)
        row.base_price_monthly, row.updated_at = 3500, later
    assert [(mrr, start, end) for _, mrr, start, end in await history(db, subscription.id)] == [
        (3000, APRIL_1, later), (3500, later, None)]


async def test_a_refused_change_writes_no_history(db, org, app_settings):
    plan = await make_plan(db, currency="USD", monthly=3000)  # no payment method: PAYMENT_REQUIRED
    with pytest.raises(BillingError) as error:
        await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                        payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(app_settings),
                        now=APRIL_1)
    assert error.value.code is BillingErrorCode.PAYMENT_REQUIRED
    assert await history(db) == []


async def test_the_database_refuses_a_second_open_revision(db, org, app_settings):
    _, subscription = await started(db, org, app_settings)
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(SubscriptionMrrRevision(
                id=uuid.uuid4(), subscription_id=subscription.id, organization_id=org.id,
                plan_id=subscription.plan_id, currency="USD", status=SubscriptionStatus.ACTIVE, mrr_minor=1,
                valid_from=APRIL_1 + timedelta(days=1), valid_to=None))


async def test_no_mrr_is_stored_for_a_status_that_does_not_count(db, org, app_settings):
    _, subscription = await started(db, org, app_settings)
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(SubscriptionMrrRevision(
                id=uuid.uuid4(), subscription_id=subscription.id, organization_id=org.id,
                plan_id=subscription.plan_id, currency="USD", status=SubscriptionStatus.TRIALING, mrr_minor=1,
                valid_from=APRIL_1 - timedelta(days=30), valid_to=APRIL_1 - timedelta(days=1)))


async def test_the_migration_backfills_subscriptions_without_history(db, org, app_settings):
    _, subscription = await started(db, org, app_settings)
    async with db.write() as session:
        await session.execute(SubscriptionMrrRevision.__table__.delete())
    async with db.engine.begin() as connection:
        await connection.run_sync(backfill, APRIL_1 + timedelta(days=60))
    assert await history(db, subscription.id) == [(SubscriptionStatus.ACTIVE, 3000, APRIL_1, None)]


async def test_a_rolled_back_savepoint_keeps_what_the_transaction_changed_before(db, org, app_settings):
    _, subscription = await started(db, org, app_settings, per_agent=500, included_agents=1)
    later = APRIL_1 + timedelta(days=2)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.agent_count, row.updated_at = 2, later
        await session.flush()
        savepoint = await session.begin_nested()
        row.status = SubscriptionStatus.CANCELED
        await session.flush()
        await savepoint.rollback()
    assert [(status, mrr, start) for status, mrr, start, _ in await history(db)] == [
        (SubscriptionStatus.ACTIVE, 3000, APRIL_1), (SubscriptionStatus.ACTIVE, 3500, later)]
