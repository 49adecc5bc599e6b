"""Revenue analytics against a data set built by hand through the services; every figure is
worked out in the comments (USD, no tax rate: amounts in cents).

Catalog: Basic $10.00/month ($100.00/year); Pro $30.00/month ($300.00/year) plus $5.00 a month per
agent above the 1 included; Starter $20.00/month with a 14-day trial; FREE100 = 100% off forever.

    2025-12-01  E subscribes to Pro ANNUAL (1 agent): pays 30000; MRR 30000/12 = 2500
    2025-12-20  B subscribes to Pro monthly with 3 agents: 3000 + 2 x 500 = 4000; pays 4000
    -- state at 2026-01-01: MRR 2500 + 4000 = 6500; live 2 (E, B); paying 2
    2026-01-01  A subscribes to Basic monthly: pays 1000; new MRR 1000
    2026-01-10  C subscribes to Starter: TRIALING, MRR 0 (a new subscription, no MRR)
    2026-01-12  D subscribes to Starter: TRIALING
    2026-01-16  A upgrades to Pro mid-month; its period Jan 1 -> Feb 1 has 31 days, 16 remain:
                credit 1000 x 16/31 = 516.13 -> 516, charge 3000 x 16/31 = 1548.39 -> 1548,
                pays 1548 - 516 = 1032; MRR 1000 -> 3000: expansion 2000
    2026-01-20  D's trial is canceled: a churned subscription, churned MRR 0
    2026-02-02  C's trial converts (ACTIVE): MRR 0 -> 2000: new MRR 2000, one trial conversion
    2026-02-05  B's December invoice is refunded 1500
    2026-02-15  E downgrades to Basic ANNUAL: MRR 2500 -> 10000/12 = 833.33 -> 833: contraction
                1667; the proration is a credit (no payment): 30000 x 289/365 back, 10000 x 289/365 due
    2026-02-20  F subscribes to Basic with FREE100: ACTIVE but MRR 0, pays nothing
    2026-03-05  B cancels immediately: churned MRR 4000
    2026-03-10  G subscribes to Basic; the card is declined: PAST_DUE (counts in MRR) 1000 new
                MRR, one failed payment, its invoice of 1000 stays open
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import CouponDuration, Invoice, Payment, PaymentStatus, SubscriptionMrrRevision
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.analytics.report import revenue_analytics
from billing_graphql.services.payments.refunds import refund_invoice
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe, update_subscription
from billing_graphql.services.subscriptions.plan_changes import Effective, change_plan
from tests.factories import make_coupon, make_payment_method, make_plan, set_agents

ADMIN = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="user:analyst")
NOW = datetime(2026, 4, 10, tzinfo=UTC)
S = SubscriptionStatus


def day(month: int, number: int, year: int = 2026) -> datetime:
    return datetime(year, month, number, tzinfo=UTC)


async def build(db, settings) -> dict[str, object]:
    basic = await make_plan(db, name="Basic", currency="USD", monthly=1000, annual=10000, sort_order=1)
    pro = await make_plan(db, name="Pro", currency="USD", monthly=3000, annual=30000, per_agent=500,
                          included_agents=1, sort_order=2)
    starter = await make_plan(db, name="Starter", currency="USD", monthly=2000, trial_days=14, sort_order=3)
    await make_coupon(db, code="FREE100", percent_off=100, duration=CouponDuration.FOREVER)
    orgs = {}
    for name in "ABCDEFG":
        orgs[name] = await create_organization(db, None, name=name, external_id=f"{name}-{uuid.uuid4().hex[:6]}",
                                               now=day(11, 1, 2025))
        # G's first charge meets a processor fault: kept, pending (a declined one creates nothing)
        token = "pm_card_error" if name == "G" else "pm_card_visa"
        await make_payment_method(db, orgs[name].id, token=token, now=day(11, 1, 2025))

    async def start(name, plan, when, period=BillingPeriod.MONTHLY, coupon=None):
        return await subscribe(db, None, organization_id=orgs[name].id, choice=PlanChoice(plan.id, period, coupon),
                               payment_method_id=None, idempotency_key=None,
                               gateways=GatewayRegistry(settings), now=when)

    async def move(name, plan, when, period):
        return await change_plan(db, None, organization_id=orgs[name].id, plan_id=plan.id, billing_period=period,
                                 effective=Effective.IMMEDIATE, spending_cap=None, dry_run=False,
                                 idempotency_key=None, gateways=GatewayRegistry(settings), now=when)

    await start("E", pro, day(12, 1, 2025), BillingPeriod.ANNUAL)
    await set_agents(db, orgs["B"].id, 3)
    b = await start("B", pro, day(12, 20, 2025))
    await start("A", basic, day(1, 1))
    c = await start("C", starter, day(1, 10))
    await start("D", starter, day(1, 12))
    upgrade = await move("A", pro, day(1, 16), BillingPeriod.MONTHLY)
    assert upgrade.invoice.amount_paid == 1032
    await cancel(db, None, organization_id=orgs["D"].id, immediately=True, reason=None, now=day(1, 20))
    await update_subscription(db, ADMIN, subscription_id=c.subscription.id, status=S.ACTIVE,
                              reason="trial converted", now=day(2, 2))
    refund = await refund_invoice(db, ADMIN, invoice_id=b.invoice.id, amount_minor=1500, reason="goodwill",
                                  idempotency_key=None, gateways=GatewayRegistry(settings),
                                  now=day(2, 5))
    assert refund.amount == 1500
    downgrade = await move("E", basic, day(2, 15), BillingPeriod.ANNUAL)
    assert downgrade.invoice is None and downgrade.credit_added == 23753 - 7918
    f = await start("F", basic, day(2, 20), coupon="FREE100")
    assert f.payment is None
    await cancel(db, None, organization_id=orgs["B"].id, immediately=True, reason=None, now=day(3, 5))
    g = await start("G", basic, day(3, 10))
    assert g.subscription.status is S.ACTIVE and g.payment.status.value == "PENDING"
    # ...then settled as declined: the payment FAILED, the subscription PAST_DUE
    async with db.write() as session:
        await session.execute(update(Payment).where(Payment.id == g.payment.id).values(
            status=PaymentStatus.FAILED, failure_code="card_declined"))
    await update_subscription(db, ADMIN, subscription_id=g.subscription.id, status=S.PAST_DUE,
                              reason="first payment declined", now=day(3, 10))
    return {"basic": basic, "pro": pro, "starter": starter}


def money(report_month, *names):
    return [getattr(report_month, name) for name in names]


async def test_every_figure_of_the_worked_example(db, app_settings):
    plans = await build(db, app_settings)
    report = await revenue_analytics(db, first=date(2026, 1, 1), last=date(2026, 3, 31), currency="USD", now=NOW)
    january, february, march = report.months
    assert [m.month for m in report.months] == ["2026-01", "2026-02", "2026-03"]

    # January: from 6500, A new (+1000), A's upgrade (+2000): 9500 at the end. New subscriptions
    # A, C, D (trials count); churned D (the canceled trial) out of 2 live at the start: 0.5.
    # Paying at the end: E, B, A -> ARPU 9500 / 3 = 3166.67 -> 3167. Received 1000 + 1032.
    assert money(january, "mrr", "arr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr") == [
        9500, 114000, 1000, 2000, 0, 0]
    assert money(january, "new_subscriptions", "churned_subscriptions", "churn_rate", "trial_conversions") == [
        3, 1, Decimal("0.5000"), 0]
    assert money(january, "net_revenue", "arpu") == [2032, 3167]

    # February: C converts (+2000 new), E downgrades (-1667): 9833. New F (100% off: no MRR);
    # no churn out of 4 live (E, B, A, C). Paying E, B, A, C -> 9833 / 4 = 2458.25 -> 2458.
    # Received nothing, refunded 1500.
    assert money(february, "mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr") == [
        9833, 2000, 0, 1667, 0]
    assert money(february, "new_subscriptions", "churned_subscriptions", "churn_rate", "trial_conversions") == [
        1, 0, Decimal("0.0000"), 1]
    assert money(february, "net_revenue", "arpu") == [-1500, 2458]

    # March: G new while PAST_DUE (+1000), B cancels (-4000): 6833. Churned B out of 5 live
    # (E, B, A, C, F): 0.2. Paying E 833, A 3000, C 2000, G 1000 -> 6833 / 4 = 1708.25 -> 1708.
    assert money(march, "mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr") == [
        6833, 1000, 0, 0, 4000]
    assert money(march, "new_subscriptions", "churned_subscriptions", "churn_rate", "trial_conversions") == [
        1, 1, Decimal("0.2000"), 0]
    assert money(march, "net_revenue", "arpu") == [0, 1708]

    # Now: E 833 + A 3000 + C 2000 + F 0 + G 1000 = 6833 (the last month's end, carried forward
    # from the start by the movements, agrees with the open revisions).
    assert (report.mrr, report.arr) == (6833, 6833 * 12)
    assert dict(report.by_status) == {S.TRIALING: 0, S.ACTIVE: 4, S.PAST_DUE: 1, S.UNPAID: 0, S.CANCELED: 2}
    # Live subscriptions per plan: Basic E, F, G (833 + 0 + 1000); Pro A; Starter C.
    assert [(row.plan.name, row.subscriptions, row.mrr) for row in report.by_plan] == [
        ("Basic", 3, 1833), ("Pro", 1, 3000), ("Starter", 1, 2000)]
    # G's open invoice; payments in the range: A's two succeeded, G's one failed -> 1/3.
    assert report.outstanding == 1000
    assert report.failed_payments_rate == Decimal("0.3333")
    assert plans


async def test_a_range_inside_the_example_starts_from_the_state_then(db, app_settings):
    await build(db, app_settings)
    # February 10 .. March 4: the start state is February 10's (C converted: 9500 + 2000 =
    # 11500); E's downgrade (-1667) falls inside, B's cancellation (March 5) does not; the
    # refund (February 5) is before the range.
    report = await revenue_analytics(db, first=date(2026, 2, 10), last=date(2026, 3, 4), currency="USD", now=NOW)
    february, march = report.months
    assert (february.mrr, february.new_mrr, february.contraction_mrr, february.net_revenue) == (9833, 0, 1667, 0)
    assert (february.new_subscriptions, february.trial_conversions) == (1, 0)
    assert (march.mrr, march.churned_mrr, march.new_mrr) == (9833, 0, 0)
    assert report.failed_payments_rate == Decimal("0.0000")


@pytest.mark.parametrize("first,last", [(date(2026, 3, 1), date(2026, 1, 1)), (date(2020, 1, 1), date(2020, 1, 31))])
async def test_an_empty_range_gives_zeros(db, app_settings, first, last):
    await build(db, app_settings)
    report = await revenue_analytics(db, first=first, last=last, currency="USD", now=NOW)
    assert all(m.mrr == m.new_mrr == m.net_revenue == m.arpu == 0 for m in report.months)
    assert len(report.months) == (0 if first > last else 1)
    assert report.failed_payments_rate == Decimal("0.0000")


async def test_a_currency_without_subscriptions_gives_zeros(db, app_settings):
    await build(db, app_settings)
    report = await revenue_analytics(db, first=date(2026, 1, 1), last=date(2026, 3, 31), currency="eur", now=NOW)
    assert report.currency == "EUR" and (report.mrr, report.outstanding, report.by_plan) == (0, 0, ())
    assert all(count == 0 for _, count in report.by_status)
    assert [(m.month, m.mrr, m.new_subscriptions, m.net_revenue, m.churn_rate) for m in report.months] == [
        (key, 0, 0, 0, Decimal("0.0000")) for key in ("2026-01", "2026-02", "2026-03")]


async def test_the_history_tiles_time_and_the_open_revisions_are_the_state_now(db, app_settings):
    await build(db, app_settings)
    async with db.read() as session:
        revisions = (await session.scalars(
            select(SubscriptionMrrRevision).order_by(SubscriptionMrrRevision.subscription_id,
                                                     SubscriptionMrrRevision.valid_from))).all()
        open_invoices = (await session.scalars(select(Invoice).where(Invoice.status == "OPEN"))).all()
    by_subscription: dict[uuid.UUID, list[SubscriptionMrrRevision]] = {}
    for revision in revisions:
        by_subscription.setdefault(revision.subscription_id, []).append(revision)
    assert len(by_subscription) == 7 and len(open_invoices) == 1
    for history in by_subscription.values():
        assert [r.valid_to for r in history[:-1]] == [r.valid_from for r in history[1:]]
        assert history[-1].valid_to is None
    # A: Basic 1000 from January 1, then Pro 3000 from January 16.
    a = next(h for h in by_subscription.values() if h[0].valid_from == day(1, 1))
    assert [(r.mrr_minor, r.valid_from) for r in a] == [(1000, day(1, 1)), (3000, day(1, 16))]
