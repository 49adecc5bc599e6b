"""changePlan and add-ons: proration invoices, credit, schedules, dry runs, caps, errors, races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import (
    AuditEvent,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Organization,
    OutboxEvent,
    Payment,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.subscriptions.plan_changes import Effective, attach_addon, change_plan, detach_addon
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe
from tests.factories import (
    count_rows,
    database_state,
    expect_unchanged,
    make_addon,
    make_coupon,
    make_payment_method,
    make_plan,
    set_agents,
    set_credit,
)

APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day monthly period: Apr 1 -> May 1
HALFWAY = datetime(2026, 4, 16, tzinfo=UTC)  # 15 of 30 days left


async def start(db, org, settings, plan, *, coupon=None, period=BillingPeriod.MONTHLY, now=APRIL_1):
    return await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, period, coupon),
                           payment_method_id=None, idempotency_key=None,
                           gateways=GatewayRegistry(settings), now=now)


async def change(db, org, settings, plan=None, *, period=None, effective=Effective.IMMEDIATE, cap=None,
                 dry_run=False, key=None, now=HALFWAY):
    return await change_plan(db, None, organization_id=org.id, plan_id=plan.id if plan else None,
                             billing_period=period, effective=effective, spending_cap=cap, dry_run=dry_run,
                             idempotency_key=key, gateways=GatewayRegistry(settings), now=now)


async def lines_of(db, invoice_id):
    async with db.read() as session:
        return (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
                                      .order_by(InvoiceLine.position))).all()


async def credit_of(db, org) -> int:
    async with db.read() as session:
        return (await session.get(Organization, org.id)).credit_balance


@pytest.fixture
async def idr(db, org):
    starter = await make_plan(db, name="Starter", monthly=299000, annual=2990000, included_agents=5)
    growth = await make_plan(db, name="Growth", monthly=599000, annual=5990000, included_agents=5)
    await make_payment_method(db, org.id, token="pm_card_visa")
    return starter, growth


async def test_worked_example_upgrade_halfway_idr(db, org, app_settings, idr):
    starter, growth = idr
    await start(db, org, app_settings, starter)
    result = await change(db, org, app_settings, growth)
    invoice = result.invoice
    # credit 299000 x 1/2 = 149500, charge 599000 x 1/2 = 299500: net 150000
    # PPN 12% of 11/12 of 150000 = 16500; total 166500
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (150000, 0, 16500, 166500)
    assert invoice.number == "INV-202604-000002"  # 000001 was the first period's invoice
    assert invoice.status is InvoiceStatus.PAID and result.payment.amount == 166500
    assert invoice.billing_reason.value == "SUBSCRIPTION_UPDATE"
    assert (invoice.period_start, invoice.period_end) == (HALFWAY, datetime(2026, 5, 1, tzinfo=UTC))
    lines = await lines_of(db, invoice.id)
    assert [(line.kind, line.amount, line.description) for line in lines] == [
        (InvoiceLineKind.PRORATION_CREDIT, -149500, "Unused time on Starter (monthly)"),
        (InvoiceLineKind.PRORATION_CHARGE, 299500, "Remaining time on Growth (monthly)"),
    ]
    assert lines[0].unit_amount == Decimal(-149500)
    sub = result.subscription
    assert sub.plan_id == growth.id
    assert (sub.current_period_start, sub.current_period_end) == (APRIL_1, datetime(2026, 5, 1, tzinfo=UTC))
    async with db.read() as session:
        events = (await session.scalars(select(OutboxEvent.event_type).order_by(OutboxEvent.created_at))).all()
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "subscription.plan_changed"))
    assert events.count("subscription.updated") == 1 and events.count("invoice.paid") == 2
    assert audit.before["plan_id"] == str(starter.id) and audit.after["plan_id"] == str(growth.id)


async def test_downgrade_becomes_account_credit_spent_on_the_next_invoice(db, org, app_settings, idr):
    starter, growth = idr
    await start(db, org, app_settings, growth)
    # 20 of 30 days left: credit 599000 x 2/3 = 399333, charge 299000 x 2/3 = 199333: net -200000
    # tax handed back 22000: account credit 222000, and no invoice
    result = await change(db, org, app_settings, starter, now=datetime(2026, 4, 11, tzinfo=UTC))
    assert result.invoice is None and result.credit_added == 222000
    assert result.preview.total == -222000
    assert await credit_of(db, org) == 222000
    assert await count_rows(db, Invoice) == 1
    # upgrading back at Apr 21 (10 of 30 days left): 599000/3 - 299000/3 = 199666.67 - 99666.67
    # credit 99667, charge 199667, net 100000, tax 11000, total 111000; all of it from the credit
    back = await change(db, org, app_settings, growth, now=datetime(2026, 4, 21, tzinfo=UTC))
    assert (back.invoice.total, back.invoice.credit_applied, back.invoice.status) == (111000, 111000, InvoiceStatus.PAID)
    assert back.payment is None
    assert await credit_of(db, org) == 222000 - 111000


async def test_change_of_billing_period_starts_a_new_period_now(db, org, app_settings, idr):
    starter, _ = idr
    await start(db, org, app_settings, starter)
    result = await change(db, org, app_settings, period=BillingPeriod.ANNUAL)
    # credit 149500, charge the whole annual 2990000: net 2840500, tax 312455, total 3152955
    assert (result.invoice.subtotal, result.invoice.tax, result.invoice.total) == (2840500, 312455, 3152955)
    sub = result.subscription
    assert sub.billing_period is BillingPeriod.ANNUAL
    assert (sub.period_anchor, sub.current_period_start, sub.current_period_end) == (
        HALFWAY, HALFWAY, datetime(2027, 4, 16, tzinfo=UTC))
    [credit, charge] = await lines_of(db, result.invoice.id)
    assert charge.period_end == datetime(2027, 4, 16, tzinfo=UTC)
    assert charge.description == "Starter (annual), new period"


async def test_seats_and_addons_are_part_of_the_recurring_price(db, org, app_settings):
    pro = await make_plan(db, name="Pro", currency="USD", monthly=2900, per_agent=900, included_agents=3)
    team = await make_plan(db, name="Team", currency="USD", monthly=9900, per_agent=700, included_agents=10)
    channel = await make_addon(db, name="Channel", currency="USD", monthly=500)
    ai = await make_addon(db, name="AI", currency="USD", monthly=200, per_agent=True)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 5)
    january = datetime(2026, 1, 1, tzinfo=UTC)
    await start(db, org, app_settings, pro, now=january)
    for addon in (channel, ai):
        await attach_addon(db, None, organization_id=org.id, addon_id=addon.id, quantity=1, gateways=GatewayRegistry(app_settings),
                           now=january)
    # Jan 11, 21 of 31 days left. Old: 2900 + 2x900 + 500 + 5x200 = 6200; new: 9900 + 0 + 500 + 1000 = 11400
    # credit 6200 x 21/31 = 4200; charge 11400 x 21/31 = 7722.58 -> 7723; net 3523 (no tax in USD)
    result = await change(db, org, app_settings, team, now=datetime(2026, 1, 11, tzinfo=UTC))
    assert (result.invoice.subtotal, result.invoice.tax, result.invoice.total) == (3523, 0, 3523)


async def test_trial_changes_plan_without_invoice(db, org, app_settings, idr):
    trial = await make_plan(db, name="Trial", monthly=299000, trial_days=14)
    _, growth = idr
    await start(db, org, app_settings, trial)
    result = await change(db, org, app_settings, growth, period=BillingPeriod.ANNUAL,
                          now=APRIL_1 + timedelta(days=3))
    # no invoice; the preview says nothing is due until the trial ends (issue 13, item 13)
    assert result.invoice is None and result.preview.total == 0 and "trial ends" in result.preview.message
    sub = result.subscription
    assert (sub.plan_id, sub.billing_period, sub.status) == (growth.id, BillingPeriod.ANNUAL, SubscriptionStatus.TRIALING)
    assert sub.current_period_end == APRIL_1 + timedelta(days=14)  # still the trial
    assert await count_rows(db, Invoice) == 0


async def test_period_end_schedules_replaces_and_clears(db, org, app_settings, idr):
    starter, growth = idr
    business = await make_plan(db, name="Business", monthly=1499000)
    await start(db, org, app_settings, starter)
    scheduled = await change(db, org, app_settings, growth, effective=Effective.PERIOD_END)
    assert scheduled.invoice is None
    sub = scheduled.subscription
    assert (sub.plan_id, sub.pending_plan_id, sub.pending_billing_period) == (starter.id, growth.id, BillingPeriod.MONTHLY)
    await expect_unchanged(db, BillingErrorCode.SAME_PLAN,
                           change(db, org, app_settings, growth, effective=Effective.PERIOD_END))
    replaced = await change(db, org, app_settings, business, period=BillingPeriod.ANNUAL,
                            effective=Effective.PERIOD_END)
    assert (replaced.subscription.pending_plan_id, replaced.subscription.pending_billing_period) == (
        business.id, BillingPeriod.ANNUAL)
    cleared = await change(db, org, app_settings, starter, effective=Effective.PERIOD_END)
    assert cleared.subscription.pending_plan_id is None and cleared.subscription.pending_billing_period is None
    assert await count_rows(db, Invoice) == 1


async def test_immediate_change_replaces_a_schedule(db, org, app_settings, idr):
    starter, growth = idr
    await start(db, org, app_settings, starter)
    await change(db, org, app_settings, growth, effective=Effective.PERIOD_END)
    result = await change(db, org, app_settings, growth)
    assert result.subscription.pending_plan_id is None and result.invoice is not None


async def test_dry_run_previews_exactly_what_the_call_creates_and_writes_nothing(db, org, app_settings, idr):
    starter, growth = idr
    await start(db, org, app_settings, starter)
    await set_credit(db, org.id, 1000)
    before = await database_state(db)
    preview = (await change(db, org, app_settings, growth, dry_run=True)).preview
    assert await database_state(db) == before
    real = await change(db, org, app_settings, growth)
    invoice = real.invoice
    assert (preview.subtotal, preview.discount, preview.tax, preview.total, preview.credit_applied,
            preview.amount_due) == (invoice.subtotal, invoice.discount, invoice.tax, invoice.total,
                                    invoice.credit_applied, invoice.total - invoice.credit_applied)
    assert [(line.kind.value, line.amount) for line in preview.lines] == [
        (line.kind.value, line.amount) for line in await lines_of(db, invoice.id)]
    assert (preview.total, preview.credit_applied, preview.amount_due) == (166500, 1000, 165500)


async def test_dry_run_reports_errors_too(db, org, app_settings, idr):
    starter, _ = idr
    await start(db, org, app_settings, starter)
    await expect_unchanged(db, BillingErrorCode.SAME_PLAN, change(db, org, app_settings, starter, dry_run=True))


async def test_percentage_coupon_applies_to_the_proration(db, org, app_settings, idr):
    from billing_graphql.db.models import CouponDuration

    starter, growth = idr
    await make_coupon(db, code="TENFOREVER", percent_off=10, duration=CouponDuration.FOREVER)
    await start(db, org, app_settings, starter, coupon="TENFOREVER")
    result = await change(db, org, app_settings, growth)
    # net 150000, 10% off = 15000, taxable 135000, PPN 14850, total 149850
    assert (result.invoice.discount, result.invoice.tax, result.invoice.total) == (15000, 14850, 149850)


async def test_declined_upgrade_keeps_the_change_and_goes_past_due(db, org, app_settings):
    starter = await make_plan(db, monthly=0)
    growth = await make_plan(db, monthly=599000)
    await make_payment_method(db, org.id, token="pm_card_insufficient_funds")
    await start(db, org, app_settings, starter)
    result = await change(db, org, app_settings, growth)
    assert result.subscription.status is SubscriptionStatus.PAST_DUE
    assert result.invoice.status is InvoiceStatus.OPEN
    assert result.payment_error.code is BillingErrorCode.PAYMENT_FAILED
    assert result.payment.failure_code == "insufficient_funds"


async def test_declined_upgrade_of_an_unpaid_subscription_stays_unpaid(db, org, app_settings):
    from billing_graphql.domain.actors import Actor
    from billing_graphql.domain.roles import Role
    from billing_graphql.services.subscriptions.lifecycle import update_subscription

    admin = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="api_key:admin")
    starter = await make_plan(db, monthly=0)
    growth = await make_plan(db, monthly=599000)
    await make_payment_method(db, org.id, token="pm_card_declined")
    sub = (await start(db, org, app_settings, starter)).subscription
    for status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
        await update_subscription(db, admin, subscription_id=sub.id, status=status, reason="dunning", now=APRIL_1)
    result = await change(db, org, app_settings, growth)
    assert result.subscription.status is SubscriptionStatus.UNPAID
    assert result.payment_error.code is BillingErrorCode.PAYMENT_FAILED


async def test_equal_caps_written_differently_are_the_same_request(db, org, app_settings, idr):
    starter, _ = idr
    await start(db, org, app_settings, starter)
    first = await change(db, org, app_settings, cap=Decimal("150000"), key="cap")
    again = await change(db, org, app_settings, cap=Decimal("150000.00"), key="cap")
    assert again.replayed and again.subscription.spending_cap == first.subscription.spending_cap == 150000


async def test_spending_cap(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, per_agent=50000, included_agents=2)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 5)
    await start(db, org, app_settings, plan)
    # 3 agents above the 2 included x 50000 = 150000 a month is the least a cap may be
    error = await expect_unchanged(db, BillingErrorCode.SPENDING_CAP_TOO_LOW,
                                   change(db, org, app_settings, cap=Decimal("149999")))
    assert error.details == {"minimum_required_cap": 150000, "currency": "IDR"}
    result = await change(db, org, app_settings, cap=Decimal("200000"))
    assert result.subscription.spending_cap == 200000 and result.invoice is None
    await expect_unchanged(db, BillingErrorCode.SAME_PLAN, change(db, org, app_settings, cap=Decimal("200000")))
    await expect_unchanged(db, BillingErrorCode.VALIDATION, change(db, org, app_settings, cap=Decimal("1.5")))
    await expect_unchanged(db, BillingErrorCode.VALIDATION, change(db, org, app_settings, cap=Decimal("-1")))


async def test_change_errors_write_nothing(db, org, app_settings, idr):
    starter, growth = idr
    inactive = await make_plan(db, active=False)
    dollars = await make_plan(db, currency="USD", monthly=2900)
    await expect_unchanged(db, BillingErrorCode.NO_SUBSCRIPTION, change(db, org, app_settings, growth))
    await start(db, org, app_settings, starter)
    await expect_unchanged(db, BillingErrorCode.SAME_PLAN, change(db, org, app_settings, starter))
    await expect_unchanged(db, BillingErrorCode.SAME_PLAN, change(db, org, app_settings,
                                                                   period=BillingPeriod.MONTHLY))
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_AVAILABLE, change(db, org, app_settings, inactive))
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_AVAILABLE, change(db, org, app_settings, dollars))
    missing = await make_plan(db)
    import uuid

    missing.id = uuid.uuid4()
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_FOUND, change(db, org, app_settings, missing))
    await change(db, org, app_settings, growth, key="once")
    await expect_unchanged(db, BillingErrorCode.IDEMPOTENCY_KEY_REUSED,
                           change(db, org, app_settings, starter, key="once"))
    await cancel(db, None, organization_id=org.id, immediately=True, reason=None, now=HALFWAY)
    await expect_unchanged(db, BillingErrorCode.SUBSCRIPTION_CANCELED, change(db, org, app_settings, starter))


async def test_payment_required_for_an_upgrade_without_a_default_method(db, org, app_settings):
    free = await make_plan(db, monthly=0)
    paid = await make_plan(db, monthly=599000)
    await start(db, org, app_settings, free)
    await expect_unchanged(db, BillingErrorCode.PAYMENT_REQUIRED, change(db, org, app_settings, paid))
    # a downgrade needs no payment method
    await set_credit(db, org.id, 0)


async def test_same_key_replays_the_change(db, org, app_settings, idr):
    starter, growth = idr
    await start(db, org, app_settings, starter)
    first = await change(db, org, app_settings, growth, key="up")
    again = await change(db, org, app_settings, growth, key="up", now=HALFWAY + timedelta(hours=2))
    assert again.replayed and again.invoice.id == first.invoice.id
    assert await count_rows(db, Invoice) == 2 and await count_rows(db, Payment) == 2


async def test_ten_concurrent_plan_changes_stay_consistent(db, org, app_settings, idr):
    if db.is_sqlite:
        pytest.skip("race test: PostgreSQL only")
    starter, growth = idr
    business = await make_plan(db, name="Business", monthly=1499000, included_agents=5)
    await start(db, org, app_settings, starter)
    targets = [growth, business] * 5
    results = await asyncio.gather(
        *(change(db, org, app_settings, target, key=f"race-{i}") for i, target in enumerate(targets)),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(f, BillingError) and f.code is BillingErrorCode.SAME_PLAN for f in failures), failures
    upgrades = [r for r in done if r.invoice is not None]
    downgrades = [r for r in done if r.credit_added]
    # every effective change produced exactly one invoice (upgrade) or one credit (downgrade)
    assert len(upgrades) + len(downgrades) == len(done) >= 1
    assert await count_rows(db, Invoice) == 1 + len(upgrades)
    assert await count_rows(db, Invoice, Invoice.status == InvoiceStatus.PAID) == 1 + len(upgrades)
    assert await credit_of(db, org) + sum(r.invoice.credit_applied for r in upgrades) == sum(
        r.credit_added for r in downgrades)
    async with db.read() as session:
        sub = await session.scalar(select(Subscription))
        numbers = (await session.scalars(select(Invoice.number))).all()
        changes = await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "subscription.plan_changed"))
    assert changes == len(done)
    assert sorted(numbers) == [f"INV-202604-{n:06d}" for n in range(1, len(numbers) + 1)]
    # the final plan is the target of the last change that went through (changes alternate plans)
    assert sub.plan_id in {growth.id, business.id}


# ---- add-ons --------------------------------------------------------------------------------

async def attach(db, org, settings, addon, quantity=1, *, key=None, now=HALFWAY):
    return await attach_addon(db, None, organization_id=org.id, addon_id=addon.id, quantity=quantity,
                              idempotency_key=key, gateways=GatewayRegistry(settings), now=now)


async def detach(db, org, settings, addon, *, now=HALFWAY):
    return await detach_addon(db, None, organization_id=org.id, addon_id=addon.id, gateways=GatewayRegistry(settings), now=now)


async def test_attach_flat_addon_halfway(db, org, app_settings, idr):
    starter, _ = idr
    addon = await make_addon(db, name="Broadcast", monthly=100000)
    await start(db, org, app_settings, starter)
    result = await attach(db, org, app_settings, addon)
    # charge 100000 x 1/2 = 50000; PPN 5500; total 55500
    assert (result.invoice.subtotal, result.invoice.tax, result.invoice.total) == (50000, 5500, 55500)
    [line] = await lines_of(db, result.invoice.id)
    assert (line.kind, line.description) == (InvoiceLineKind.PRORATION_CHARGE,
                                             "Remaining time on Broadcast add-on x 1 (monthly)")
    assert await count_rows(db, SubscriptionAddon) == 1


async def test_per_agent_addon_and_quantity_change_and_detach(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, included_agents=5)
    addon = await make_addon(db, name="AI", monthly=20000, per_agent=True)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 3)
    await start(db, org, app_settings, plan)
    first = await attach(db, org, app_settings, addon)
    # 3 agents x 20000 = 60000 a month, half left: 30000; PPN 3300
    assert (first.invoice.subtotal, first.invoice.tax) == (30000, 3300)
    more = await attach(db, org, app_settings, addon, 2)
    # quantity 1 -> 2: credit 30000, charge 60000: net 30000
    assert more.invoice.subtotal == 30000
    async with db.read() as session:
        assert (await session.scalar(select(SubscriptionAddon.quantity))) == 2
    same = await attach(db, org, app_settings, addon, 2)
    assert same.invoice is None
    gone = await detach(db, org, app_settings, addon, now=datetime(2026, 4, 26, tzinfo=UTC))
    # 5 of 30 days left: credit 120000 x 1/6 = 20000 + PPN 2200 = 22200 of account credit
    assert gone.credit_added == 22200 and gone.invoice is None
    assert await count_rows(db, SubscriptionAddon) == 0
    assert await credit_of(db, org) == 22200


async def test_addon_during_trial_has_no_invoice(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    addon = await make_addon(db)
    await start(db, org, app_settings, plan)
    result = await attach(db, org, app_settings, addon, 3)
    assert result.invoice is None and await count_rows(db, Invoice) == 0 and await count_rows(db, SubscriptionAddon) == 1


async def test_addon_errors_write_nothing(db, org, app_settings, idr):
    starter, _ = idr
    inactive = await make_addon(db, active=False)
    dollars = await make_addon(db, currency="USD", monthly=500)
    attached_not = await make_addon(db)
    await expect_unchanged(db, BillingErrorCode.NO_SUBSCRIPTION, attach(db, org, app_settings, attached_not))
    await start(db, org, app_settings, starter)
    await expect_unchanged(db, BillingErrorCode.ADDON_NOT_FOUND, attach(db, org, app_settings, inactive))
    await expect_unchanged(db, BillingErrorCode.VALIDATION, attach(db, org, app_settings, dollars))
    await expect_unchanged(db, BillingErrorCode.ADDON_NOT_FOUND, detach(db, org, app_settings, attached_not))
    await expect_unchanged(db, BillingErrorCode.VALIDATION, attach(db, org, app_settings, attached_not, 0))


async def test_addon_needs_a_payment_method_when_something_is_due(db, org, app_settings):
    free = await make_plan(db, monthly=0)
    addon = await make_addon(db, monthly=100000)
    await start(db, org, app_settings, free)
    await expect_unchanged(db, BillingErrorCode.PAYMENT_REQUIRED, attach(db, org, app_settings, addon))
