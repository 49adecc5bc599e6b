"""The billing run: period arithmetic, prices of a renewal, dunning to UNPAID/CANCELED, no payment
method, exactly-once under reruns, crashes and concurrent workers, and upcomingInvoice."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from billing_graphql.db.models import Invoice, Payment, Plan, Subscription
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.sandbox import SandboxGateway
from billing_graphql.jobs.billing_run import run_billing, run_config, run_subscription
from billing_graphql.services.billing.invoice_payments import pay_invoice
from billing_graphql.services.billing.renewals import upcoming_invoice
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from billing_graphql.services.subscriptions.plan_changes import attach_addon
from tests.factories import (
    make_addon, make_coupon, make_payment_method, make_plan, set_agents, set_credit, set_overage_price,
)
from tests.services.billing_run_helpers import (
    bill,
    count,
    events,
    invoices_of,
    lines_of,
    replace_card,
    set_counter,
    subscription,
)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def start(db, settings, org_id, plan, now, *, period=BillingPeriod.MONTHLY, coupon=None):
    result = await subscribe(db, None, organization_id=org_id, choice=PlanChoice(plan.id, period, coupon),
                             payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings),
                             now=now)
    return result.subscription


class CountingGateway(SandboxGateway):
    """The sandbox, counting the distinct idempotency keys it charged (the processor's view)."""

    def __init__(self, *, crash_after_charge: bool = False) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.crash_after_charge = crash_after_charge

    async def charge(self, **kwargs):
        result = await super().charge(**kwargs)
        self.keys.append(kwargs["idempotency_key"])
        if self.crash_after_charge:
            raise RuntimeError("the process died after the processor charged")
        return result


def registry(settings, gateway) -> GatewayRegistry:
    return GatewayRegistry(settings, {"sandbox": gateway})


# ---- periods --------------------------------------------------------------------------------

@pytest.mark.parametrize(("start_at", "period", "expected"), [
    (utc(2026, 1, 31, 8), BillingPeriod.MONTHLY, [utc(2026, 2, 28, 8), utc(2026, 3, 31, 8), utc(2026, 4, 30, 8)]),
    (utc(2028, 1, 31, 8), BillingPeriod.MONTHLY, [utc(2028, 2, 29, 8), utc(2028, 3, 31, 8), utc(2028, 4, 30, 8)]),
    (utc(2028, 2, 29, 8), BillingPeriod.ANNUAL, [utc(2029, 2, 28, 8), utc(2030, 2, 28, 8)]),
])
async def test_renewals_follow_the_anchor_day_one_invoice_per_period(db, settings, org, start_at, period, expected):
    plan = await make_plan(db, monthly=100000, trial_days=0)
    await make_payment_method(db, org.id)
    sub = await start(db, settings, org.id, plan, start_at, period=period)
    result = await bill(db, settings, expected[-1])  # several periods behind: one run catches up
    invoices = await invoices_of(db, sub.id)
    assert [i.period_start for i in invoices[1:]] == expected
    assert [i.finalized_at for i in invoices[1:]] == expected
    assert all(i.status is InvoiceStatus.PAID for i in invoices)
    assert (result.tally.invoices, result.tally.paid) == (len(expected), len(expected))
    assert (await subscription(db, sub.id)).current_period_start == expected[-1]


# ---- what a renewal bills -------------------------------------------------------------------

async def test_renewal_bills_addons_coupon_months_credit_and_capped_overage(db, settings, org):
    plan = await make_plan(db, name="Pro", monthly=200000, per_agent=10000, included_agents=2, trial_days=0,
                           limits={"messages": 100})
    await set_overage_price(db, plan.id, 50)
    flat = await make_addon(db, name="Reports", monthly=30000)
    seat = await make_addon(db, name="AI", monthly=5000, per_agent=True)
    await make_coupon(db, code="TWOMONTHS", percent_off=10, duration=__import__(
        "billing_graphql.db.models", fromlist=["CouponDuration"]).CouponDuration.REPEATING, months=2)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 3)
    t0 = utc(2026, 1, 10, 12)
    sub = await start(db, settings, org.id, plan, t0, coupon="twomonths")
    for addon in (flat, seat):
        await attach_addon(db, None, organization_id=org.id, addon_id=addon.id, quantity=1, gateways=GatewayRegistry(settings),
                           now=t0)
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.id == sub.id).values(spending_cap=30000))
    await set_counter(db, org.id, "messages", "2026-01", 1000, t0)  # 900 over x 50 = 45,000; room 30,000 - 10,000
    await set_credit(db, org.id, 5000)

    await bill(db, settings, utc(2026, 2, 10, 12))
    renewal = (await invoices_of(db, sub.id))[-1]
    assert lines_of(renewal) == [
        ("PLAN", "Pro plan (monthly)", 1, 200000, 200000),
        ("SEATS", "Agents above the 2 included (monthly)", 1, 10000, 10000),
        ("ADDON", "Reports add-on (monthly)", 1, 30000, 30000),
        ("ADDON", "AI add-on, per agent (monthly)", 3, 5000, 15000),
        ("USAGE", "Messages above the 100 included per month (capped by the spending cap)", 900, 50, 20000),
    ]
    # the coupon's second month; credit after tax
    assert (renewal.subtotal, renewal.discount, renewal.tax, renewal.total, renewal.credit_applied,
            renewal.amount_paid) == (275000, 27500, 27225, 274725, 5000, 269725)
    await bill(db, settings, utc(2026, 3, 10, 12))
    third = (await invoices_of(db, sub.id))[-1]
    assert third.discount == 0  # two months used
    assert (await subscription(db, sub.id)).coupon_id is None


async def test_upcoming_invoice_is_the_invoice_the_run_makes(db, settings, org):
    plan = await make_plan(db, monthly=120000, per_agent=20000, included_agents=1, trial_days=14,
                           limits={"messages": 10})
    await set_overage_price(db, plan.id, 7)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 4)
    await make_coupon(db, code="HALF", percent_off=50)
    t0 = utc(2026, 3, 3, 10)
    sub = await start(db, settings, org.id, plan, t0, coupon="HALF")
    for moment in (t0, utc(2026, 3, 17, 10), utc(2026, 4, 17, 10)):
        await bill(db, settings, moment)
        await set_counter(db, org.id, "messages", moment.strftime("%Y-%m"), 25, moment)
        async with db.read() as session:
            row = await session.get(Subscription, sub.id)
            preview = await upcoming_invoice(session, row)
        made = await bill(db, settings, row.current_period_end)
        assert made.tally.invoices == 1
        invoice = (await invoices_of(db, sub.id))[-1]
        assert [(l.kind.value, l.description, l.quantity, l.unit_amount, l.amount, l.period_start, l.period_end)
                for l in preview.lines] == [
            (l.kind.value, l.description, l.quantity, l.unit_amount, l.amount, l.period_start, l.period_end)
            for l in invoice.lines]
        assert (preview.subtotal, preview.discount, preview.tax, preview.total, preview.credit_applied) == (
            invoice.subtotal, invoice.discount, invoice.tax, invoice.total, invoice.credit_applied)


# ---- failures and dunning -------------------------------------------------------------------

async def test_no_payment_method_is_payment_required_then_unpaid_then_recovered(db, settings, org):
    plan = await make_plan(db, monthly=100000, trial_days=7)
    sub = await start(db, settings, org.id, plan, utc(2026, 5, 1))
    await bill(db, settings, utc(2026, 5, 8))
    row = await subscription(db, sub.id)
    assert (row.status, row.next_retry_at) == (SubscriptionStatus.PAST_DUE, utc(2026, 5, 9))
    failed = [e for e in await events(db, org.id) if e[0] == "invoice.payment_failed"]
    assert [e[2]["failureCode"] for e in failed] == ["payment_required"]
    result = await bill(db, settings, utc(2026, 5, 20))  # four retries on 9, 11, 13, 15 May
    row = await subscription(db, sub.id)
    assert (row.status, row.retry_count, row.last_retry_at, row.next_retry_at) == (
        SubscriptionStatus.UNPAID, 4, utc(2026, 5, 15), None)
    assert result.tally.failed == 4
    [invoice] = await invoices_of(db, sub.id)
    assert (invoice.status, invoice.retry_count, invoice.last_retry_at) == (InvoiceStatus.OPEN, 4, utc(2026, 5, 15))
    # UNPAID: the next period is invoiced, not charged
    await bill(db, settings, utc(2026, 6, 8))
    invoices = await invoices_of(db, sub.id)
    assert [i.status for i in invoices] == [InvoiceStatus.OPEN, InvoiceStatus.OPEN]
    assert await count(db, Payment) == 0
    # paying both returns it to ACTIVE
    visa = await make_payment_method(db, org.id)
    for invoice in invoices:
        await pay_invoice(db, None, invoice_id=invoice.id, organization_scope=org.id, payment_method_id=visa.id,
                          idempotency_key=None, gateways=GatewayRegistry(settings), now=utc(2026, 6, 9))
    assert (await subscription(db, sub.id)).status is SubscriptionStatus.ACTIVE


async def test_final_action_cancel(db, settings, org):
    settings = replace(settings, dunning_days=(2,), dunning_final_action="cancel")
    plan = await make_plan(db, monthly=100000, trial_days=0)
    await make_payment_method(db, org.id)
    sub = await start(db, settings, org.id, plan, utc(2026, 5, 1))
    await replace_card(db, org.id, "pm_card_insufficient_funds")  # the renewal on Jun 1 is declined
    result = await bill(db, settings, utc(2026, 6, 10))
    row = await subscription(db, sub.id)
    assert (row.status, row.ended_at, row.retry_count) == (SubscriptionStatus.CANCELED, utc(2026, 6, 3), 1)
    assert result.tally.canceled == 1
    kinds = [(e[0], e[2]["object"]["status"]) for e in await events(db, org.id)]
    assert kinds[-3:] == [("invoice.payment_failed", "OPEN"), ("subscription.updated", "UNPAID"),
                          ("subscription.canceled", "CANCELED")]


async def test_processor_fault_leaves_the_payment_pending_and_the_retry_reconciles_it(db, settings, org):
    plan = await make_plan(db, monthly=100000, trial_days=0)
    await make_payment_method(db, org.id)
    sub = await start(db, settings, org.id, plan, utc(2026, 5, 1))
    await replace_card(db, org.id, "pm_card_error")
    await bill(db, settings, utc(2026, 6, 1))
    row = await subscription(db, sub.id)
    assert (row.status, row.next_retry_at) == (SubscriptionStatus.ACTIVE, utc(2026, 6, 2))
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Payment).where(
            Payment.status == "PENDING")) == 1
    await bill(db, settings, utc(2026, 6, 2))  # same key again: the processor still fails -> stays pending
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == 2  # first invoice + one pending


# ---- exactly once ---------------------------------------------------------------------------

async def _due_organizations(db, settings, n: int, now: datetime):
    plan = await make_plan(db, monthly=100000, trial_days=0)
    subs = []
    for index in range(n):
        organization = await create_organization(db, None, name=f"Org {index}", external_id=f"o-{uuid.uuid4().hex[:8]}",
                                                 now=now)
        await make_payment_method(db, organization.id)
        subs.append(await start(db, settings, organization.id, plan, now))
    return subs


async def test_running_twice_at_one_instant_bills_once(db, settings):
    t0 = utc(2026, 1, 5)
    subs = await _due_organizations(db, settings, 5, t0)
    gateway = CountingGateway()
    first = await bill(db, settings, utc(2026, 2, 5), registry(settings, gateway))
    second = await bill(db, settings, utc(2026, 2, 5), registry(settings, gateway))
    assert (first.tally.invoices, second.tally.invoices, second.tally.examined) == (5, 0, 0)
    assert await count(db, Invoice, Invoice.billing_reason == "SUBSCRIPTION_CYCLE") == 5
    assert len(gateway.keys) == len(set(gateway.keys)) == 5
    assert await count(db, Payment) == 10  # 5 at subscribe, 5 renewals
    assert [(await subscription(db, s.id)).current_period_start for s in subs] == [utc(2026, 2, 5)] * 5


async def test_a_crash_after_the_charge_is_finished_by_the_next_run_not_repeated(db, settings, org):
    plan = await make_plan(db, monthly=100000, trial_days=0)
    await make_payment_method(db, org.id)
    sub = await start(db, settings, org.id, plan, utc(2026, 1, 5))
    crashing = CountingGateway(crash_after_charge=True)
    crashed = await bill(db, settings, utc(2026, 2, 5), registry(settings, crashing))
    assert crashed.errors == 1 and len(await invoices_of(db, sub.id)) == 1  # rolled back
    healthy = CountingGateway()
    done = await bill(db, settings, utc(2026, 2, 5), registry(settings, healthy))
    assert done.tally.invoices == 1 and done.errors == 0
    invoices = await invoices_of(db, sub.id)
    assert [(i.number, i.status) for i in invoices][1:] == [("INV-202602-000001", InvoiceStatus.PAID)]
    # the processor was sent one key for the renewal: the rerun repeated the first call's key
    assert crashing.keys == healthy.keys
    async with db.read() as session:
        payment = await session.scalar(select(Payment).where(Payment.invoice_id == invoices[1].id))
    assert payment.idempotency_key == healthy.keys[0]


async def test_concurrent_workers_bill_each_subscription_once(db, settings, backend):
    if backend != "postgres":
        pytest.skip("four processes at once: PostgreSQL's SKIP LOCKED (SQLite serializes writers)")
    t0 = utc(2026, 1, 5)
    await _bulk_due(db, 500, t0)
    gateway = CountingGateway()
    config = run_config(settings, registry(settings, gateway))
    results = await asyncio.gather(*[run_billing(db, config, now=utc(2026, 2, 5), batch=50) for _ in range(4)])
    assert sum(r.tally.invoices for r in results) == 500
    assert sum(r.errors for r in results) == 0
    assert await count(db, Invoice) == 500
    assert await count(db, Payment) == 500
    assert len(gateway.keys) == len(set(gateway.keys)) == 500
    async with db.read() as session:
        numbers = (await session.scalars(select(Invoice.number))).all()
    assert sorted(numbers) == [f"INV-202602-{n:06d}" for n in range(1, 501)]
    assert sum(1 for r in results if r.tally.invoices) >= 2  # the work was shared


async def _bulk_due(db, n: int, t0: datetime) -> None:
    """``n`` organizations, each with a card and an ACTIVE subscription whose period ends a month
    after ``t0`` (written directly: the bench's seeding)."""
    from bench.renewals import seed_due

    await seed_due(db, n, t0)


async def test_run_subscription_on_a_missing_id_does_nothing(db, settings):
    tally = await run_subscription(db, uuid.uuid4(), utc(2026, 1, 1), run_config(settings, GatewayRegistry(settings)))
    assert tally.examined == 0


async def test_coupons_count_months_once_on_the_first_invoice_repeating_not_past_an_annual_period(db, settings, org):
    from billing_graphql.db.models import CouponDuration

    plan = await make_plan(db, monthly=100000, annual=1000000, trial_days=14)
    await make_payment_method(db, org.id)
    await make_coupon(db, code="ONCE10", percent_off=10)
    sub = await start(db, settings, org.id, plan, utc(2026, 1, 1), coupon="ONCE10")
    await bill(db, settings, utc(2026, 3, 20))  # trial end Jan 15, renewals Feb 15, Mar 15
    assert [i.discount for i in await invoices_of(db, sub.id)] == [10000, 0, 0]

    other = await create_organization(db, None, name="Annual", external_id="annual-co", now=utc(2026, 1, 1))
    await make_payment_method(db, other.id)
    await make_coupon(db, code="THREEMONTHS", percent_off=20, duration=CouponDuration.REPEATING, months=3)
    yearly = await start(db, settings, other.id, plan, utc(2026, 1, 1), period=BillingPeriod.ANNUAL,
                         coupon="THREEMONTHS")
    await bill(db, settings, utc(2027, 1, 20))  # trial end Jan 15 2026, renewal Jan 15 2027
    assert [i.discount for i in await invoices_of(db, yearly.id)] == [200000, 0]
