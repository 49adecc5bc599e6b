"""One clock jump and many small steps end in the same state (issue 18, item 2; DESIGN section 3:
"a billing run at T performs every step due at or before T, in order, each at its own instant").

Hypothesis draws a schedule: a trial or none, and actions at drawn days (a declined card, a
recovered card, seats, a change scheduled for the period's end, a cancellation at the period's
end). Two organizations live the same schedule on the same plans: one is brought up to date
once at each action's instant and at the end (one jump), the other also at drawn instants in
between (small steps). Their subscriptions, invoices, payments, events and MRR revisions must
be the same, ids and invoice numbers aside. Hypothesis' loop runs in a worker thread and hands
each example's coroutine to the test's event loop (where the database fixture lives).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing_graphql.db.models import Invoice, OutboxEvent, Payment, Subscription
from billing_graphql.db.models.analytics import SubscriptionMrrRevision
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.proration import Effective
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_config, run_subscription
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe
from billing_graphql.services.subscriptions.plan_changes import change_plan
from tests.factories import make_payment_method, make_plan, set_agents
from tests.services.billing_run_helpers import replace_card

START = datetime(2026, 1, 31, 10, tzinfo=UTC)  # an anchor that clamps (Feb 28, Mar 31, Apr 30)
HORIZON_DAYS = 75
ACTIONS = ("decline", "recover", "agents", "schedule_change", "cancel_at_period_end")

instants = st.integers(1, HORIZON_DAYS * 24).map(lambda hours: START + timedelta(hours=hours))
schedules = st.fixed_dictionaries({
    "trial_days": st.sampled_from([0, 7, 14]),
    "actions": st.lists(st.tuples(instants, st.sampled_from(ACTIONS), st.integers(1, 6)), max_size=3),
    "steps": st.lists(instants, min_size=1, max_size=6),
})


def _strip(rows, *drop) -> list[tuple]:
    return [tuple(value for name, value in sorted(row.items()) if name not in drop) for row in rows]


async def _state(db, organization_id: uuid.UUID) -> dict:
    """What the billing run made of the organization, without ids and invoice numbers."""
    async with db.read() as session:
        subscription = await session.scalar(select(Subscription).where(Subscription.organization_id == organization_id))
        fields = ("status", "plan_id", "billing_period", "current_period_start", "current_period_end",
                  "trial_ends_at", "cancel_at_period_end", "canceled_at", "ended_at", "retry_count",
                  "last_retry_at", "next_retry_at", "agent_count", "pending_plan_id", "trial_will_end_sent_at")
        invoices = (await session.scalars(select(Invoice).where(Invoice.organization_id == organization_id))).all()
        payments = (await session.execute(
            select(Payment.created_at, Payment.status, Payment.amount, Invoice.period_start)
            .join(Invoice, Invoice.id == Payment.invoice_id).where(Invoice.organization_id == organization_id)
        )).all()
        events = (await session.execute(select(OutboxEvent.event_type, OutboxEvent.created_at)
                                        .where(OutboxEvent.organization_id == organization_id))).all()
        revisions = (await session.execute(
            select(SubscriptionMrrRevision.valid_from, SubscriptionMrrRevision.valid_to, SubscriptionMrrRevision.seq,
                   SubscriptionMrrRevision.status, SubscriptionMrrRevision.mrr_minor)
            .where(SubscriptionMrrRevision.organization_id == organization_id)
        )).all()
    invoice_fields = ("period_start", "period_end", "status", "billing_reason", "subtotal", "tax", "total",
                      "amount_paid", "credit_applied", "retry_count", "last_retry_at", "finalized_at", "paid_at")
    return {
        "subscription": {name: getattr(subscription, name) for name in fields},
        "invoices": sorted((tuple(getattr(invoice, name) for name in invoice_fields) for invoice in invoices),
                           key=repr),
        "payments": sorted(payments, key=repr),
        "events": sorted(events, key=repr),
        "revisions": sorted(revisions, key=repr),
    }


async def _live_the_schedule(db, settings, schedule: dict, plans) -> tuple[dict, dict]:
    gateways = GatewayRegistry(settings)
    config = run_config(settings, gateways)
    tag = uuid.uuid4().hex[:8]
    organizations = {}
    for way in ("jump", "steps"):
        organization = await create_organization(db, None, name=f"{way} {tag}", external_id=f"{way}-{tag}",
                                                 now=START)
        await make_payment_method(db, organization.id, token="pm_card_visa")
        await subscribe(db, None, organization_id=organization.id,
                        choice=PlanChoice(plans[schedule["trial_days"]].id, BillingPeriod.MONTHLY),
                        payment_method_id=None, idempotency_key=None, gateways=gateways, now=START)
        async with db.read() as session:
            subscription_id = await session.scalar(
                select(Subscription.id).where(Subscription.organization_id == organization.id))
        organizations[way] = (organization.id, subscription_id)

    async def run(way: str, at: datetime) -> None:
        organization_id, subscription_id = organizations[way]
        await run_subscription(db, subscription_id, at, config, organization_id=organization_id)

    async def act(way: str, at: datetime, action: str, amount: int) -> None:
        organization_id, _ = organizations[way]
        try:
            if action == "decline":
                await replace_card(db, organization_id, "pm_card_declined")
            elif action == "recover":
                await replace_card(db, organization_id, "pm_card_visa")
            elif action == "agents":
                await set_agents(db, organization_id, amount, now=at)
            elif action == "schedule_change":
                await change_plan(db, None, organization_id=organization_id, plan_id=plans["other"].id,
                                  billing_period=None, effective=Effective.PERIOD_END, gateways=gateways, now=at)
            else:
                await cancel(db, None, organization_id=organization_id, immediately=False, reason=None, now=at)
        except Exception as error:  # a refused action (e.g. the subscription has ended) is refused for both
            return type(error).__name__
        return None

    actions = sorted(schedule["actions"], key=lambda item: item[0])
    end = START + timedelta(days=HORIZON_DAYS)
    steps = sorted(set(schedule["steps"]))
    previous = START
    for at, action, amount in [*actions, (end, None, 0)]:
        for step in [instant for instant in steps if previous < instant < at]:
            await run("steps", step)
        for way in ("jump", "steps"):
            await run(way, at)
        if action is not None:
            outcomes = {way: await act(way, at, action, amount) for way in ("jump", "steps")}
            assert outcomes["jump"] == outcomes["steps"]
        previous = at
    return await _state(db, organizations["jump"][0]), await _state(db, organizations["steps"][0])


async def test_one_jump_and_many_small_steps_end_in_the_same_state(db, settings):
    plans = {
        0: await make_plan(db, name="No trial", monthly=100000, per_agent=20000, trial_days=0),
        7: await make_plan(db, name="Week trial", monthly=150000, per_agent=20000, trial_days=7),
        14: await make_plan(db, name="Two-week trial", monthly=120000, per_agent=10000, trial_days=14),
        "other": await make_plan(db, name="Other", monthly=80000, per_agent=5000, trial_days=0),
    }
    loop = asyncio.get_running_loop()

    @hypothesis_settings(max_examples=6, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(schedules)
    def same_end(schedule):
        jump, steps = asyncio.run_coroutine_threadsafe(_live_the_schedule(db, settings, schedule, plans),
                                                       loop).result()
        assert jump == steps

    await asyncio.to_thread(same_end)
