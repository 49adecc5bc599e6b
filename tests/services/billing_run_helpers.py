"""Shared pieces of the billing-run tests: usage counters, default cards, reading what was billed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Metric, OutboxEvent, Payment, PaymentMethod, Subscription, UsageCounter
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_billing, run_config
from tests.factories import make_payment_method


async def set_counter(db: Database, organization_id: uuid.UUID, code: str, month: str, value: int,
                      now: datetime) -> None:
    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == code))
        counter = await session.scalar(select(UsageCounter).where(
            UsageCounter.organization_id == organization_id, UsageCounter.metric_id == metric_id,
            UsageCounter.period_key == month))
        if counter is None:
            session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key=month,
                                     value=value, updated_at=now))
        else:
            counter.value = value


async def replace_card(db: Database, organization_id: uuid.UUID, token: str) -> PaymentMethod:
    """A new default card (the old ones stop being the default)."""
    async with db.write() as session:
        await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == organization_id)
                              .values(is_default=False))
    return await make_payment_method(db, organization_id, token=token)


async def bill(db: Database, settings, now: datetime, gateways: GatewayRegistry | None = None):
    return await run_billing(db, run_config(settings, gateways or GatewayRegistry(settings)), now=now)


async def invoices_of(db: Database, subscription_id: uuid.UUID) -> list[Invoice]:
    from sqlalchemy.orm import selectinload

    async with db.read() as session:
        rows = await session.scalars(select(Invoice).options(selectinload(Invoice.lines))
                                     .where(Invoice.subscription_id == subscription_id)
                                     .order_by(Invoice.finalized_at, Invoice.number))
        return list(rows.all())


def lines_of(invoice: Invoice) -> list[tuple]:
    return [(line.kind.value, line.description, int(line.quantity), int(line.unit_amount), line.amount)
            for line in invoice.lines]


async def events(db: Database, organization_id: uuid.UUID) -> list[tuple[str, datetime, dict]]:
    """(event type, time, payload) of the organization's subscription and invoice events, in order.

    The outbox has no sequence column: events of one instant keep the order they were inserted
    in (heap/rowid order, read without ORDER BY and sorted stably on the time)."""
    async with db.read() as session:
        rows = await session.execute(select(OutboxEvent.event_type, OutboxEvent.created_at, OutboxEvent.payload)
                                     .where(OutboxEvent.organization_id == organization_id))
        return sorted((row for row in rows.all() if row[0].startswith(("subscription.", "invoice."))),
                      key=lambda row: row[1])


async def subscription(db: Database, subscription_id: uuid.UUID) -> Subscription:
    async with db.read() as session:
        return await session.get(Subscription, subscription_id)


async def count(db: Database, model, *where) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def charges(db: Database) -> int:
    """Payments written (each is one gateway key)."""
    return await count(db, Payment)


async def subscribed_on_test_clock(db: Database, organization_id: uuid.UUID, settings, at: datetime, *,
                                   token: str = "pm_card_visa", clock: bool = True, **plan_options):
    """The test clock set to ``at`` (unless ``clock`` is false: set already), a card, and a monthly
    subscription started then to a new plan (no trial unless ``trial_days`` is given); returns the plan."""
    from billing_graphql.db.models import TestClock
    from billing_graphql.domain.periods import BillingPeriod
    from billing_graphql.services.subscriptions.choice import PlanChoice
    from billing_graphql.services.subscriptions.lifecycle import subscribe
    from tests.factories import make_plan

    if clock:
        async with db.write() as session:
            session.add(TestClock(id=1, now=at))
    plan = await make_plan(db, **{"monthly": 100000, "trial_days": 0, **plan_options})
    await make_payment_method(db, organization_id, token=token)
    await subscribe(db, None, organization_id=organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=at)
    return plan

