"""MRR's laws over drawn histories (issue 18, item 4), on both databases:

- for every month, MRR(end) = MRR(start) + new + expansion - contraction - churned, and MRR(end)
  is the MRR of the revisions in force at the month's end (the carried figure is the real one);
- MRR now is what the next renewals would bill for recurring items (plan, seats at the agents
  gauge, add-ons), monthly-equivalent: the sum of upcomingInvoice's PLAN, SEATS and ADDON lines
  of the subscriptions that count.

Hypothesis draws subscriptions, seat changes (recorded as usage), add-ons, cancellations (now,
and at the period's end, also the instant a subscription started) over a few months, with the
billing run at every instant. Its loop runs in a worker thread (see test_jump_equals_steps).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from billing_graphql.db.models import Invoice, Organization, PaymentMethod, Subscription
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.services.billing.invoice_lifecycle import mark_uncollectible, void_invoice
from billing_graphql.db.models.analytics import SubscriptionMrrRevision
from billing_graphql.domain.analytics import MRR_STATUSES
from billing_graphql.domain.invoices import InvoiceLineKind
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.usage import EventInput
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_billing, run_config
from billing_graphql.services.analytics.report import _start_state, revenue_analytics
from billing_graphql.services.billing.renewals import upcoming_invoice
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.plan_changes import attach_addon
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe
from billing_graphql.services.usage.ingest import record_usage
from tests.factories import make_addon, make_payment_method, make_plan

START = datetime(2026, 1, 20, 9, tzinfo=UTC)
DAYS = 110
RECURRING = (InvoiceLineKind.PLAN, InvoiceLineKind.SEATS, InvoiceLineKind.ADDON)
KINDS = ("subscribe", "seats", "addon", "cancel_now", "cancel_at_period_end", "decline", "void", "uncollectible")

# Every organization subscribes at the start (to a drawn plan); then drawn events, in quarter days.
histories = st.tuples(
    st.lists(st.integers(0, 2), min_size=3, max_size=3),
    st.lists(st.tuples(st.integers(0, DAYS * 4), st.integers(0, 2), st.sampled_from(KINDS), st.integers(0, 9)),
             min_size=1, max_size=10),
)


async def _live(db, settings, drawn, plans, addon) -> None:
    first_plans, events = drawn
    history = [(0, who, "subscribe", plan) for who, plan in enumerate(first_plans)] + events
    gateways = GatewayRegistry(settings)
    tag = uuid.uuid4().hex[:8]
    organizations = []
    for index in range(3):
        organization = await create_organization(db, None, name=f"Org {index} {tag}",
                                                 external_id=f"org-{index}-{tag}", now=START)
        await make_payment_method(db, organization.id, token="pm_card_visa")
        organizations.append(organization.id)
    config = run_config(settings, gateways)
    for quarter_days, who, kind, amount in sorted(history, key=lambda item: item[0]):
        at = START + timedelta(hours=quarter_days * 6)
        await run_billing(db, config, now=at)
        organization_id = organizations[who]
        try:
            if kind == "subscribe":
                await subscribe(db, None, organization_id=organization_id,
                                choice=PlanChoice(plans[amount % len(plans)].id, BillingPeriod.MONTHLY),
                                payment_method_id=None, idempotency_key=None, gateways=gateways, now=at)
            elif kind == "seats":
                await record_usage(db, organization_id=organization_id, now=at, events=[
                    EventInput("agents", amount, at, f"seats-{quarter_days}-{uuid.uuid4().hex[:6]}")])
            elif kind == "addon":
                await attach_addon(db, None, organization_id=organization_id, addon_id=addon.id, quantity=1 + amount % 2,
                                   idempotency_key=None, gateways=gateways, now=at)
            elif kind == "decline":  # the card starts declining: the next renewal leaves an OPEN invoice
                async with db.write() as session:
                    await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == organization_id)
                                          .values(gateway_payment_method_id="pm_card_declined"))
            elif kind in ("void", "uncollectible"):  # staff end the organization's latest OPEN invoice (issue 21)
                async with db.read() as session:
                    invoice_id = await session.scalar(
                        select(Invoice.id).where(Invoice.organization_id == organization_id,
                                                 Invoice.status == InvoiceStatus.OPEN)
                        .order_by(Invoice.created_at.desc()).limit(1))
                if invoice_id is not None:
                    end = void_invoice if kind == "void" else mark_uncollectible
                    await end(db, None, invoice_id=invoice_id, reason=None, idempotency_key=None, now=at)
            else:
                await cancel(db, None, organization_id=organization_id, immediately=kind == "cancel_now", reason=None,
                             now=at)
        except Exception:  # refused (no live subscription, already subscribed...): nothing changed
            pass
    await run_billing(db, config, now=START + timedelta(days=DAYS))


async def _check(db, now: datetime) -> None:
    report = await revenue_analytics(db, first=date(2026, 1, 1), last=now.date(), currency="IDR", now=now)
    async with db.read() as session:
        carried = (await _start_state(session, {"currency": "IDR", "start": datetime(2026, 1, 1, tzinfo=UTC)})).mrr
        for month in report.months:
            assert month.mrr == (carried + month.new_mrr + month.expansion_mrr - month.contraction_mrr
                                 - month.churned_mrr), month
            year, number = map(int, month.month.split("-"))
            end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
            if end <= now:
                assert month.mrr == (await _start_state(session, {"currency": "IDR", "start": end})).mrr, month
            carried = month.mrr
        assert report.mrr == carried
        renewals = 0
        for subscription in (await session.scalars(select(Subscription))).all():
            if subscription.status not in MRR_STATUSES or subscription.cancel_at_period_end:
                continue
            preview = await upcoming_invoice(session, subscription)
            renewals += sum(line.amount for line in preview.lines if line.kind in RECURRING)
        counted_at_period_end = sum(
            revision.mrr_minor for revision in (await session.scalars(
                select(SubscriptionMrrRevision).join(Subscription, Subscription.id == SubscriptionMrrRevision.subscription_id)
                .where(SubscriptionMrrRevision.valid_to.is_(None), Subscription.cancel_at_period_end.is_(True))
            )).all())
    assert report.mrr == renewals + counted_at_period_end  # (a pending cancellation still counts until it ends)


async def test_mrr_identity_and_renewals_over_drawn_histories(db, settings):
    plans = [await make_plan(db, name=f"Plan {price}", monthly=price, per_agent=per_agent, included_agents=1,
                             trial_days=0)
             for price, per_agent in ((100000, 20000), (250000, 40000), (50000, 0))]
    addon = await make_addon(db, monthly=30000, per_agent=True)
    loop = asyncio.get_running_loop()

    @hypothesis_settings(max_examples=6, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(histories)
    # Seats added between renewals, and a subscription canceled the instant it started.
    @example(([0, 1, 2], [(DAYS * 4 - 8, 0, "seats", 8), (DAYS * 4 - 6, 1, "addon", 1), (0, 2, "cancel_now", 0)]))
    # Renewals declined, then staff void one organization's open invoice and write off another's.
    @example(([0, 1, 2], [(20, 0, "decline", 0), (20, 1, "decline", 0), (160, 0, "void", 0),
                          (170, 1, "uncollectible", 0), (200, 0, "seats", 5)]))
    def laws_hold(history):
        async def example():
            try:
                await _live(db, settings, history, plans, addon)
                await _check(db, START + timedelta(days=DAYS))
            finally:  # the next example starts with no subscriptions
                async with db.write() as session:
                    await session.execute(delete(Organization).where(Organization.external_id.like("org-%")))
        asyncio.run_coroutine_threadsafe(example(), loop).result()

    await asyncio.to_thread(laws_hold)
