"""Many subscriptions with a history, for analytics' statement-count test and bench/analytics.py.

Subscriptions, their plan changes and cancellations go through the ORM, so the MRR history is
written by ``db.mrr_history`` as in production; invoices and payments are bulk-inserted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    BillingReason,
    Invoice,
    Organization,
    Payment,
    PaymentStatus,
    Plan,
    Subscription,
)
from billing_graphql.domain.periods import BillingPeriod, add_months
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus

FIRST_MONTH = datetime(2025, 1, 1, tzinfo=UTC)


def _plan(name: str, monthly: int, currency: str, now: datetime) -> Plan:
    return Plan(id=uuid.uuid4(), name=name, slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}", currency=currency,
                base_price_monthly=monthly, base_price_annual=monthly * 10, per_agent_price=monthly // 10,
                overage_message_price=0, included_agents=1, trial_days=0, created_at=now, updated_at=now)


async def seed_history(db: Database, count: int, *, months: int = 12, currency: str = "USD",
                       first_month: datetime = FIRST_MONTH, batch: int = 2000) -> None:
    """``count`` organizations, each with a subscription started in one of ``months`` months from
    ``first_month``; every 4th upgrades 15 days later, every 7th is canceled 40 days later; each
    has a paid first invoice, and every 10th a failed payment attempt too."""
    plans = [_plan(name, price, currency, first_month) for name, price in (("Basic", 1000), ("Pro", 3000),
                                                                          ("Team", 9000))]
    async with db.write() as session:
        session.add_all(plans)
    for offset in range(0, count, batch):
        numbers = range(offset, min(offset + batch, count))
        subscriptions: list[Subscription] = []
        async with db.write() as session:
            for number in numbers:
                started = add_months(first_month, number % months) + timedelta(days=number % 28, hours=number % 24)
                period = BillingPeriod.ANNUAL if number % 5 == 0 else BillingPeriod.MONTHLY
                organization = Organization(id=uuid.uuid4(), name=f"Org {number}", external_id=f"bulk-{uuid.uuid4()}",
                                            created_at=started, updated_at=started)
                subscription = Subscription(
                    id=uuid.uuid4(), organization_id=organization.id, plan_id=plans[number % 2].id,
                    status=SubscriptionStatus.ACTIVE, billing_period=period, period_anchor=started,
                    current_period_start=started, current_period_end=add_months(started, period.months),
                    agent_count=1 + number % 3, created_at=started, updated_at=started,
                )
                session.add_all([organization, subscription])
                subscriptions.append(subscription)
        async with db.write() as session:
            for number, subscription in zip(numbers, subscriptions, strict=True):
                if number % 4 == 0:
                    row = await session.merge(subscription, load=False)
                    row.plan_id = plans[2].id
                    row.updated_at = subscription.created_at + timedelta(days=15)
        async with db.write() as session:
            for number, subscription in zip(numbers, subscriptions, strict=True):
                if number % 7 == 0:
                    row = await session.merge(subscription, load=False)
                    row.status = SubscriptionStatus.CANCELED
                    row.canceled_at = row.ended_at = row.updated_at = subscription.created_at + timedelta(days=40)
        await _money(db, list(zip(numbers, subscriptions, strict=True)), currency)


async def _money(db: Database, rows: list[tuple[int, Subscription]], currency: str) -> None:
    invoices, payments = [], []
    for number, subscription in rows:
        when, invoice_id, amount = subscription.created_at, uuid.uuid4(), 1000 + number % 7 * 100
        invoices.append(dict(
            id=invoice_id, organization_id=subscription.organization_id, subscription_id=subscription.id,
            number=f"INV-BULK-{uuid.uuid4().hex[:12]}", status=InvoiceStatus.PAID,
            billing_reason=BillingReason.SUBSCRIPTION_CREATE, currency=currency, subtotal=amount, discount=0, tax=0,
            total=amount, credit_applied=0, amount_paid=amount, amount_refunded=0, finalized_at=when, paid_at=when,
            created_at=when, updated_at=when,
        ))
        attempts = [PaymentStatus.FAILED, PaymentStatus.SUCCEEDED] if number % 10 == 0 else [PaymentStatus.SUCCEEDED]
        for status in attempts:
            payments.append(dict(
                id=uuid.uuid4(), organization_id=subscription.organization_id, invoice_id=invoice_id,
                gateway="sandbox", idempotency_key=f"bulk_{uuid.uuid4().hex}", amount=amount, amount_refunded=0,
                currency=currency, status=status, created_at=when, updated_at=when,
            ))
    async with db.write() as session:
        await session.execute(insert(Invoice), invoices)
        await session.execute(insert(Payment), payments)

