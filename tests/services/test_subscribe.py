"""subscribe: trials, a paid first period, coupons, errors that write nothing, idempotency and races."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import (
    AuditEvent,
    Coupon,
    CouponDuration,
    CouponRedemption,
    IdempotencyRecord,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    OutboxEvent,
    Payment,
    PaymentStatus,
    Subscription,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import (
    count_rows,
    expect_unchanged,
    make_coupon,
    make_payment_method,
    make_plan,
    set_agents,
)
from tests.helpers import T0


async def run(db, org_id, settings, *, plan=None, period=BillingPeriod.MONTHLY, coupon=None, method=None, key=None,
              now=T0):
    return await subscribe(db, None, organization_id=org_id, choice=PlanChoice(plan.id if plan else None, period, coupon),
                           payment_method_id=method,
                           idempotency_key=key, gateways=GatewayRegistry(settings), now=now)


async def event_types(db) -> list[str]:
    async with db.read() as session:
        return sorted((await session.scalars(select(OutboxEvent.event_type))).all())


async def lines_of(db, invoice_id):
    async with db.read() as session:
        return (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)
                                      .order_by(InvoiceLine.position))).all()


async def test_trial_plan_starts_trialing_without_invoice(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    result = await run(db, org.id, app_settings, plan=plan)
    sub = result.subscription
    assert sub.status is SubscriptionStatus.TRIALING
    assert sub.trial_ends_at == T0 + timedelta(days=14)
    assert (sub.current_period_start, sub.current_period_end) == (T0, T0 + timedelta(days=14))
    assert sub.period_anchor == sub.trial_ends_at  # paid periods start when the trial ends
    assert result.invoice is None and result.payment is None
    assert await count_rows(db, Invoice) == 0
    assert await event_types(db) == ["organization.created", "subscription.created"]
    assert await count_rows(db, AuditEvent, AuditEvent.action == "subscription.created") == 1


async def test_trial_needs_no_payment_method(db, org, app_settings):
    plan = await make_plan(db, trial_days=7)
    assert (await run(db, org.id, app_settings, plan=plan)).subscription.status is SubscriptionStatus.TRIALING


async def test_no_trial_starts_active_with_first_period_invoiced_and_charged(db, org, app_settings):
    plan = await make_plan(db, name="Starter", monthly=299000, trial_days=0)
    await make_payment_method(db, org.id, token="pm_card_visa")
    result = await run(db, org.id, app_settings, plan=plan)
    sub, invoice, payment = result.subscription, result.invoice, result.payment
    assert sub.status is SubscriptionStatus.ACTIVE and sub.trial_ends_at is None
    # Jan 15 09:00 -> Feb 15 09:00
    assert (sub.current_period_start, sub.current_period_end) == (T0, T0.replace(month=2))
    # 299000 + PPN 32890 = 331890
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.status) == (299000, 32890, 331890, InvoiceStatus.PAID)
    assert invoice.number == "INV-202601-000001" and invoice.billing_reason.value == "SUBSCRIPTION_CREATE"
    assert (invoice.period_start, invoice.period_end) == (T0, T0.replace(month=2))
    assert (payment.status, payment.amount) == (PaymentStatus.SUCCEEDED, 331890)
    assert result.payment_error is None
    [line] = await lines_of(db, invoice.id)
    assert (line.kind, line.amount, line.description) == (InvoiceLineKind.PLAN, 299000, "Starter plan (monthly)")
    assert await event_types(db) == ["invoice.created", "invoice.paid", "organization.created",
                                     "subscription.created"]


async def test_annual_period_and_seats(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, annual=2990000, per_agent=50000, included_agents=2)
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 4)
    result = await run(db, org.id, app_settings, plan=plan, period=BillingPeriod.ANNUAL)
    assert result.subscription.current_period_end == T0.replace(year=2027)
    assert result.subscription.agent_count == 4
    lines = await lines_of(db, result.invoice.id)
    # 2 agents above the 2 included, 50000 a month each, 12 months: 1200000
    assert [(line.kind, line.quantity, line.amount) for line in lines] == [
        (InvoiceLineKind.PLAN, 1, 2990000), (InvoiceLineKind.SEATS, 2, 1200000)]
    assert result.invoice.subtotal == 4190000


async def test_default_plan_is_the_cheapest_active(db, org, app_settings):
    await make_plan(db, monthly=100, active=False, trial_days=5)
    cheap = await make_plan(db, monthly=1000, sort_order=5, trial_days=5)
    await make_plan(db, monthly=1000, sort_order=9, trial_days=5)
    await make_plan(db, monthly=5000, sort_order=0, trial_days=5)
    assert (await run(db, org.id, app_settings)).subscription.plan_id == cheap.id


async def test_percentage_coupon_once_discounts_the_first_invoice_and_ends(db, org, app_settings):
    plan = await make_plan(db, monthly=299000)
    coupon = await make_coupon(db, code="launch20", percent_off=20)
    await make_payment_method(db, org.id)
    result = await run(db, org.id, app_settings, plan=plan, coupon=" Launch20 ")
    # 299000 - 20% = 239200; PPN 26312; total 265512
    assert (result.invoice.discount, result.invoice.tax, result.invoice.total) == (59800, 26312, 265512)
    assert result.subscription.coupon_id is None  # ONCE: used by the first period
    async with db.read() as session:
        assert (await session.get(Coupon, coupon.id)).current_uses == 1
        assert await session.scalar(select(func.count()).select_from(CouponRedemption)) == 1


async def test_repeating_coupon_counts_down_and_trial_keeps_it(db, org, app_settings):
    plan = await make_plan(db, monthly=299000)
    await make_coupon(db, code="THREE", percent_off=10, duration=CouponDuration.REPEATING, months=3)
    await make_payment_method(db, org.id)
    result = await run(db, org.id, app_settings, plan=plan, coupon="three")
    assert result.subscription.coupon_periods_remaining == 2
    other = await create_organization(db, None, name="O", external_id="o", now=T0)
    trial = await make_plan(db, trial_days=14)
    await make_coupon(db, code="FOREVER5", percent_off=5, duration=CouponDuration.FOREVER)
    trialing = await run(db, other.id, app_settings, plan=trial, coupon="FOREVER5")
    assert trialing.subscription.coupon_id is not None and trialing.subscription.coupon_periods_remaining is None


async def test_fixed_coupon_in_plan_currency(db, org, app_settings):
    plan = await make_plan(db, monthly=299000)
    await make_coupon(db, code="MINUS50K", amount_off=50000, currency="IDR")
    await make_payment_method(db, org.id)
    result = await run(db, org.id, app_settings, plan=plan, coupon="MINUS50K")
    # 299000 - 50000 = 249000; PPN 27390; total 276390
    assert (result.invoice.discount, result.invoice.tax, result.invoice.total) == (50000, 27390, 276390)


async def test_declined_first_charge_creates_nothing_but_the_audit_row(db, org, app_settings):
    plan = await make_plan(db)
    await make_payment_method(db, org.id, token="pm_card_declined")
    events = await event_types(db)
    error = await expect_unchanged_but_audit(db, run(db, org.id, app_settings, plan=plan, key="k1"))
    assert (error.code, error.field) == (BillingErrorCode.PAYMENT_FAILED, "paymentMethodId")
    assert await event_types(db) == events
    assert await count_rows(db, AuditEvent, AuditEvent.action == "subscription.payment_failed") == 1
    # the key keeps the error: a replay raises it again without a second attempt
    with pytest.raises(BillingError) as replayed:
        await run(db, org.id, app_settings, plan=plan, key="k1")
    assert (replayed.value.code, replayed.value.message) == (error.code, error.message)
    assert await count_rows(db, AuditEvent, AuditEvent.action == "subscription.payment_failed") == 1


async def expect_unchanged_but_audit(db, call) -> BillingError:
    """``call`` fails and leaves no subscription, invoice, payment, redemption or event behind."""
    counts = [await count_rows(db, model) for model in (Subscription, Invoice, Payment, CouponRedemption, OutboxEvent)]
    with pytest.raises(BillingError) as raised:
        await call
    assert [await count_rows(db, model) for model in (Subscription, Invoice, Payment, CouponRedemption,
                                                       OutboxEvent)] == counts
    return raised.value


async def test_processor_fault_keeps_the_subscription_with_a_pending_payment(db, org, app_settings):
    plan = await make_plan(db)
    await make_payment_method(db, org.id, token="pm_card_error")
    result = await run(db, org.id, app_settings, plan=plan, key="fault")
    assert result.subscription.status is SubscriptionStatus.ACTIVE  # the outcome is unknown, not a decline
    assert result.invoice.status is InvoiceStatus.OPEN
    assert (result.payment.status, result.payment.failure_code) == (PaymentStatus.PENDING, "processing_error")
    assert result.payment_error.code is BillingErrorCode.PAYMENT_FAILED
    assert "pending" in result.payment_error.message
    async with db.read() as session:
        assert (await session.get(Payment, result.payment.id)).status is PaymentStatus.PENDING  # committed


async def test_explicit_payment_method_is_used(db, org, app_settings):
    plan = await make_plan(db)
    await make_payment_method(db, org.id, token="pm_card_declined", is_default=True)
    visa = await make_payment_method(db, org.id, token="pm_card_visa", is_default=False)
    result = await run(db, org.id, app_settings, plan=plan, method=visa.id)
    assert result.payment.status is PaymentStatus.SUCCEEDED and result.payment.payment_method_id == visa.id


async def test_free_plan_needs_no_payment_method(db, org, app_settings):
    plan = await make_plan(db, monthly=0)
    result = await run(db, org.id, app_settings, plan=plan)
    assert result.invoice.status is InvoiceStatus.PAID and result.payment is None
    assert result.subscription.status is SubscriptionStatus.ACTIVE


# ---- errors leave the database as it was ------------------------------------------------------

async def test_already_subscribed(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    await run(db, org.id, app_settings, plan=plan)
    await expect_unchanged(db, BillingErrorCode.ALREADY_SUBSCRIBED, run(db, org.id, app_settings, plan=plan))


async def test_plan_not_available_and_not_found(db, org, app_settings):
    inactive = await make_plan(db, active=False)
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_AVAILABLE, run(db, org.id, app_settings, plan=inactive))
    missing = await make_plan(db)
    missing.id = uuid.uuid4()
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_FOUND, run(db, org.id, app_settings, plan=missing))


async def test_no_active_plan_at_all(db, org, app_settings):
    await make_plan(db, active=False)
    await expect_unchanged(db, BillingErrorCode.PLAN_NOT_FOUND, run(db, org.id, app_settings))


async def test_coupon_errors(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    other_plan = await make_plan(db, trial_days=14)
    await make_coupon(db, code="OFF", active=False)
    await make_coupon(db, code="LATER", valid_from=T0 + timedelta(days=1))
    await make_coupon(db, code="OLD", valid_from=T0 - timedelta(days=30), valid_until=T0)
    await make_coupon(db, code="GONE", max_uses=2, current_uses=2)
    await make_coupon(db, code="OTHERPLAN", plans=[other_plan])
    await make_coupon(db, code="DOLLARS", amount_off=500, currency="USD")
    cases = [("NOPE", BillingErrorCode.COUPON_INVALID), ("off", BillingErrorCode.COUPON_INVALID),
             ("LATER", BillingErrorCode.COUPON_INVALID), ("OLD", BillingErrorCode.COUPON_EXPIRED),
             ("GONE", BillingErrorCode.COUPON_EXHAUSTED), ("OTHERPLAN", BillingErrorCode.COUPON_NOT_APPLICABLE),
             ("DOLLARS", BillingErrorCode.COUPON_NOT_APPLICABLE)]
    for code, expected in cases:
        error = await expect_unchanged(db, expected, run(db, org.id, app_settings, plan=plan, coupon=code))
        assert error.field == "couponCode"
    # the restricted coupon works for its own plan
    assert (await run(db, org.id, app_settings, plan=other_plan, coupon="OTHERPLAN")).subscription.coupon_id


async def test_payment_required_writes_nothing_not_even_the_coupon_use(db, org, app_settings):
    plan = await make_plan(db, trial_days=0)
    coupon = await make_coupon(db, code="HALF", percent_off=50, max_uses=1)
    await expect_unchanged(db, BillingErrorCode.PAYMENT_REQUIRED,
                           run(db, org.id, app_settings, plan=plan, coupon="HALF"))
    async with db.read() as session:
        assert (await session.get(Coupon, coupon.id)).current_uses == 0


async def test_payment_method_of_another_organization_is_not_found(db, org, app_settings):
    plan = await make_plan(db)
    other = await create_organization(db, None, name="Other", external_id="other", now=T0)
    theirs = await make_payment_method(db, other.id)
    await expect_unchanged(db, BillingErrorCode.NOT_FOUND, run(db, org.id, app_settings, plan=plan, method=theirs.id))


async def test_unknown_organization_is_not_found(db, app_settings):
    await make_plan(db, trial_days=3)
    await expect_unchanged(db, BillingErrorCode.NOT_FOUND, run(db, uuid.uuid4(), app_settings))


# ---- idempotency ----------------------------------------------------------------------------

async def test_same_key_same_input_replays(db, org, app_settings):
    plan = await make_plan(db)
    await make_payment_method(db, org.id)
    first = await run(db, org.id, app_settings, plan=plan, key="sub-1")
    again = await run(db, org.id, app_settings, plan=plan, key="sub-1", now=T0 + timedelta(hours=1))
    assert again.replayed and not first.replayed
    assert (again.subscription.id, again.invoice.id, again.payment.id) == (
        first.subscription.id, first.invoice.id, first.payment.id)
    assert (await count_rows(db, Subscription), await count_rows(db, Invoice), await count_rows(db, Payment)) == (1, 1, 1)
    assert await count_rows(db, IdempotencyRecord) == 1
    # the payment's id, and so its gateway key, follow the client's key (stable across a crash-retry)
    from billing_graphql.services.platform.idempotency import derived_id

    assert first.payment.id == derived_id(org.id, "subscribe", "sub-1", "payment")
    assert first.payment.idempotency_key == f"pay_{first.payment.id.hex}"


async def test_same_key_different_input_is_refused(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    other = await make_plan(db, trial_days=14)
    await run(db, org.id, app_settings, plan=plan, key="k")
    await expect_unchanged(db, BillingErrorCode.IDEMPOTENCY_KEY_REUSED,
                           run(db, org.id, app_settings, plan=other, key="k"))


async def test_blank_or_long_key_is_a_validation_error(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    for key in ("  ", "x" * 201):
        await expect_unchanged(db, BillingErrorCode.VALIDATION, run(db, org.id, app_settings, plan=plan, key=key))


async def test_subscribing_again_after_cancel(db, org, app_settings):
    from billing_graphql.services.subscriptions.lifecycle import cancel

    plan = await make_plan(db, trial_days=14)
    first = await run(db, org.id, app_settings, plan=plan)
    await cancel(db, None, organization_id=org.id, immediately=True, reason="moving", now=T0)
    await make_payment_method(db, org.id)
    second = await run(db, org.id, app_settings, plan=plan)
    assert second.subscription.id != first.subscription.id
    # the plan's trial was had: the second subscription is invoiced from the start
    assert second.subscription.status is SubscriptionStatus.ACTIVE and second.invoice is not None
    assert await count_rows(db, Subscription) == 2


# ---- races (PostgreSQL) ---------------------------------------------------------------------

def postgres_only(db):
    if db.is_sqlite:
        pytest.skip("race test: PostgreSQL only (SQLite serializes every writer with BEGIN IMMEDIATE)")


async def outcomes(calls):
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if not isinstance(result, BillingError) and isinstance(result, Exception):
            raise result
    return results


async def test_ten_concurrent_subscribes_make_one_subscription(db, org, app_settings):
    postgres_only(db)
    plan = await make_plan(db)
    await make_payment_method(db, org.id)
    results = await outcomes([run(db, org.id, app_settings, plan=plan, key=f"k{i}") for i in range(10)])
    ok = [r for r in results if not isinstance(r, BillingError)]
    assert len(ok) == 1
    assert all(r.code is BillingErrorCode.ALREADY_SUBSCRIBED for r in results if isinstance(r, BillingError))
    assert (await count_rows(db, Subscription), await count_rows(db, Invoice), await count_rows(db, Payment)) == (1, 1, 1)


async def test_concurrent_retries_with_one_key_run_once(db, org, app_settings):
    postgres_only(db)
    plan = await make_plan(db)
    await make_payment_method(db, org.id)
    results = await outcomes([run(db, org.id, app_settings, plan=plan, key="same") for _ in range(8)])
    assert len({r.subscription.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await count_rows(db, Subscription), await count_rows(db, Invoice), await count_rows(db, Payment)) == (1, 1, 1)


async def test_twenty_concurrent_redemptions_of_a_five_use_coupon(db, app_settings):
    postgres_only(db)
    plan = await make_plan(db, trial_days=14)
    coupon = await make_coupon(db, code="FIVE", max_uses=5)
    orgs = [await create_organization(db, None, name=f"O{i}", external_id=f"o{i}", now=T0) for i in range(20)]
    results = await outcomes([run(db, o.id, app_settings, plan=plan, coupon="FIVE") for o in orgs])
    ok = [r for r in results if not isinstance(r, BillingError)]
    assert len(ok) == 5
    assert all(r.code is BillingErrorCode.COUPON_EXHAUSTED for r in results if isinstance(r, BillingError))
    async with db.read() as session:
        assert (await session.get(Coupon, coupon.id)).current_uses == 5
    assert await count_rows(db, CouponRedemption) == 5
    assert await count_rows(db, Subscription) == 5


async def test_aware_times_survive_the_round_trip(db, org, app_settings):
    plan = await make_plan(db, trial_days=14)
    await run(db, org.id, app_settings, plan=plan, now=datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))
    async with db.read() as session:
        sub = await session.scalar(select(Subscription))
    assert sub.current_period_start.tzinfo is not None
    assert sub.trial_ends_at == datetime(2026, 4, 14, 23, 59, 59, tzinfo=UTC)
