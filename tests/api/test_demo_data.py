"""The demo tells one story in one currency, built through the services a customer uses (and the
billing run), so every figure in it is one the rules produce: four Indonesian customers on the IDR
plans (active with three months of history, in trial, past due, canceled), billing details filled,
the demo organization's usage near its limits, analytics with a curve, and the seller's and buyer's
NPWP on an Indonesian invoice PDF."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from billing_graphql.app import create_app
from billing_graphql.db.models import (
    ApiKey,
    AuditEvent,
    BillingDetails,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    Organization,
    Payment,
    PaymentStatus,
    Plan,
    Subscription,
)
from billing_graphql.demo import (
    CUSTOMERS,
    DEMO_GAUGES,
    DEMO_MESSAGES_SO_FAR,
    DEMO_SELLER,
    demo_seller_environment,
    seed_demo,
)
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.billing.invoice_documents import invoice_pdf_path
from billing_graphql.settings import Settings
from tests.api.test_invoice_pdf import pdf_text
from tests.helpers import T0


async def _state(db):
    """external id -> (organization, subscription, plan, invoices oldest first)."""
    async with db.read() as session:
        rows = (await session.execute(
            select(Organization, Subscription, Plan)
            .join(Subscription, Subscription.organization_id == Organization.id)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(Organization.external_id.in_([customer.external_id for customer in CUSTOMERS.values()]))
        )).all()
        invoices = {organization.id: (await session.scalars(
            select(Invoice).where(Invoice.organization_id == organization.id).order_by(Invoice.created_at)
        )).all() for organization, _, _ in rows}
    return {organization.external_id: (organization, subscription, plan, invoices[organization.id])
            for organization, subscription, plan in rows}


async def test_four_idr_customers_active_trialing_past_due_and_canceled(db, settings):
    await seed_demo(db, T0, settings)
    state = await _state(db)
    assert {key: (row[1].status, row[2].slug) for key, row in state.items()} == {
        "demo": (SubscriptionStatus.ACTIVE, "growth-idr"),
        "demo-trial": (SubscriptionStatus.TRIALING, "growth-idr"),
        "demo-past-due": (SubscriptionStatus.PAST_DUE, "starter-idr"),
        "demo-canceled": (SubscriptionStatus.CANCELED, "growth-idr"),
    }
    # One currency: every customer, plan and invoice of the story is in rupiah (the USD plans stand apart).
    for organization, _, plan, invoices in state.values():
        assert organization.currency == plan.currency == "IDR"
        assert {invoice.currency for invoice in invoices} <= {"IDR"}
    async with db.read() as session:
        usd = (await session.scalars(select(Plan.slug).where(Plan.currency == "USD").order_by(Plan.sort_order))).all()
        overrides = await session.scalar(select(func.count()).select_from(AuditEvent)
                                         .where(AuditEvent.action == "subscription.admin_updated"))
    assert usd == ["free", "pro", "team", "enterprise"]
    assert overrides == 0  # no status forced by staff: the billing run and the customers made them

    trial = state["demo-trial"][1]
    assert trial.trial_ends_at > T0 and state["demo-trial"][3] == [] and trial.coupon_id is not None

    organization, past_due, _, invoices = state["demo-past-due"]
    assert past_due.retry_count == 1 and past_due.next_retry_at > T0
    assert [invoice.status for invoice in invoices] == [InvoiceStatus.PAID, InvoiceStatus.PAID, InvoiceStatus.OPEN]
    async with db.read() as session:
        failed = (await session.scalars(select(Payment.failure_code).where(
            Payment.organization_id == organization.id, Payment.status == PaymentStatus.FAILED))).all()
    assert failed == ["insufficient_funds", "insufficient_funds"]  # the renewal and its first retry

    canceled = state["demo-canceled"][1]
    assert canceled.ended_at < T0 - timedelta(days=14) and canceled.cancel_reason
    assert [invoice.billing_reason.value for invoice in state["demo-canceled"][3]] == [
        "SUBSCRIPTION_CYCLE", "SUBSCRIPTION_CYCLE"]  # the trial's conversion, then one renewal


async def test_the_demo_organization_has_three_months_paid_and_an_upgrade_prorated(db, settings):
    await seed_demo(db, T0, settings)
    _, subscription, _, invoices = (await _state(db))["demo"]
    assert subscription.trial_ends_at is None
    assert [(invoice.billing_reason.value, invoice.status) for invoice in invoices] == [
        ("SUBSCRIPTION_CREATE", InvoiceStatus.PAID),  # Starter
        ("SUBSCRIPTION_CYCLE", InvoiceStatus.PAID),
        ("SUBSCRIPTION_CYCLE", InvoiceStatus.PAID),  # Starter with a third seat
        ("SUBSCRIPTION_UPDATE", InvoiceStatus.PAID),  # the upgrade to Growth
        ("SUBSCRIPTION_UPDATE", InvoiceStatus.PAID),  # the WhatsApp number add-on
        ("SUBSCRIPTION_CYCLE", InvoiceStatus.PAID),  # Growth and the add-on
    ]
    first, _, third, upgrade, _, last = invoices
    assert (first.total, third.subtotal, last.subtotal) == (331_890, 299_000 + 50_000, 599_000 + 150_000)
    assert first.period_start < T0 - timedelta(days=90)
    async with db.read() as session:
        credit, charge = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == upgrade.id)
                                                .order_by(InvoiceLine.position))).all()
    # The upgrade credits only the unused part of the paid Starter month and charges Growth for the same part.
    assert (credit.kind, charge.kind) == (InvoiceLineKind.PRORATION_CREDIT, InvoiceLineKind.PRORATION_CHARGE)
    period = third.period_end - third.period_start
    fraction = Decimal((third.period_end - upgrade.created_at) / timedelta(seconds=1)) / Decimal(
        period / timedelta(seconds=1))
    assert 0 < fraction < 1
    assert -credit.amount == round(349_000 * fraction) and charge.amount == round((599_000 + 45_000 * 0) * fraction)
    # A one-off charge waits for the next invoice.
    from billing_graphql.db.models import InvoiceItem

    async with db.read() as session:
        items = (await session.scalars(
            select(InvoiceItem).where(InvoiceItem.organization_id == subscription.organization_id))).all()
    assert [(item.description, item.invoice_id) for item in items] == [("Pelatihan tim WhatsApp (2 jam)", None)]


async def test_billing_details_are_filled_for_every_customer(db, settings):
    await seed_demo(db, T0, settings)
    async with db.read() as session:
        rows = (await session.execute(select(Organization.external_id, BillingDetails).join(
            BillingDetails, BillingDetails.organization_id == Organization.id))).all()
    details = {external_id: row for external_id, row in rows}
    assert set(details) >= {customer.external_id for customer in CUSTOMERS.values()}
    for customer in CUSTOMERS.values():
        row = details[customer.external_id]
        assert (row.legal_name, row.country, row.tax_id, row.language) == (
            customer.legal_name, "ID", customer.tax_id, customer.language)
        assert row.address
    assert {row.language for row in details.values()} == {"en", "id"}


USAGE = "{ usage { periodStart metrics { metric { code } used limit overage } } }"
ANALYTICS = """query($from: Date!, $to: Date!) { analytics(from: $from, to: $to, currency: "IDR") {
  mrr { amount } byStatus { status count }
  months { month mrr { amount } newSubscriptions churnedSubscriptions expansionMrr { amount } churnedMrr { amount }
           netRevenue { amount } trialConversions } } }"""


async def test_usage_is_near_every_limit_and_analytics_draws_a_curve(api, db, settings):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)  # the API reads the real clock
    keys = await seed_demo(db, now, settings)
    usage = (await api.ok(USAGE, token=keys[Role.OWNER]))["usage"]
    metrics = {metric["metric"]["code"]: metric for metric in usage["metrics"]}
    for code, value in DEMO_GAUGES.items():
        assert int(metrics[code]["used"]) == value
    assert int(metrics["messages"]["used"]) == DEMO_MESSAGES_SO_FAR
    for code in (*DEMO_GAUGES, "messages"):
        used, limit = int(metrics[code]["used"]), int(metrics[code]["limit"])
        assert 0.8 * limit <= used <= limit and int(metrics[code]["overage"]) == 0, (code, used, limit)

    first = (now - timedelta(days=130)).date().replace(day=1)
    report = (await api.ok(ANALYTICS, {"from": first.isoformat(), "to": now.date().isoformat()},
                           token=keys[Role.SUPER_ADMIN]))["analytics"]
    months = report["months"]
    mrr = [int(month["mrr"]["amount"]) for month in months]
    assert len(months) >= 4 and len({value for value in mrr if value}) >= 3, months  # a curve, not a line
    assert sum(month["newSubscriptions"] for month in months) >= 3
    assert sum(month["churnedSubscriptions"] for month in months) == 1
    assert sum(int(month["expansionMrr"]["amount"]) for month in months) > 0
    assert sum(month["trialConversions"] for month in months) == 1
    # every month since the first customer paid took money (this month may not have yet)
    assert all(int(month["netRevenue"]["amount"]) > 0 for month in months[1:-1]), months
    by_status = {row["status"]: row["count"] for row in report["byStatus"]}
    assert (by_status["ACTIVE"], by_status["PAST_DUE"], by_status["TRIALING"]) == (1, 1, 1), by_status


async def test_an_indonesian_invoice_pdf_with_the_demo_seller_and_buyer(db, settings):
    keys = await seed_demo(db, T0, settings)
    environment: dict[str, str] = {}
    assert demo_seller_environment(environment) and environment == DEMO_SELLER
    seller = Settings.from_env(environment)
    assert not demo_seller_environment({"BILLING_SELLER_NAME": "PT Saya"})  # a configured seller is kept
    app = create_app(replace(settings, seller_name=seller.seller_name, seller_address=seller.seller_address,
                             seller_tax_id=seller.seller_tax_id), db=db, freeze_gc=False)
    invoice = (await _state(db))["demo"][3][-1]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get(invoice_pdf_path(invoice.id), headers={"authorization": f"Bearer {keys[Role.OWNER]}"})
    assert response.status_code == 200
    text = pdf_text(response.content)
    for expected in ("Faktur INV-", "PT Contoh Layanan Digital", "Jakarta Selatan 12190", "NPWP: 01.234.567.8-012.000",
                     "PT Demo Niaga Nusantara", "NPWP: 02.345.678.9-123.000", "Subtotal Rp 749.000",
                     "DPP Nilai Lain 11/12 Rp 686.583", "PPN 12% Rp 82.390", "Total Rp 831.390", "Status: Lunas"):
        assert expected in text, (expected, text)


async def test_seeding_again_adds_nothing_but_fresh_keys(db, settings):
    first = await seed_demo(db, T0, settings)
    before = await _state(db)
    second = await seed_demo(db, T0 + timedelta(hours=1), settings)
    after = await _state(db)
    assert {key: [invoice.id for invoice in row[3]] for key, row in after.items()} == {
        key: [invoice.id for invoice in row[3]] for key, row in before.items()}
    assert not set(first.values()) & set(second.values())
    async with db.read() as session:
        live = await session.scalar(select(func.count()).select_from(ApiKey).where(
            ApiKey.revoked_at.is_(None), ApiKey.label.like("demo %")))
    assert live == len(Role)  # the previous demo keys are revoked


async def test_portal_shows_no_trial_end_on_an_active_subscription(db, settings):
    from billing_graphql.http.portal.views import SubscriptionView
    from billing_graphql.services.portal.pages import load_portal_data

    await seed_demo(db, T0, settings)
    subscription = (await _state(db))["demo"][1]
    # even one whose trial ended (its trial_ends_at kept as history)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.trial_ends_at = T0 - timedelta(days=1)
    view = SubscriptionView.of(await load_portal_data(db, subscription.organization_id, T0))
    assert view.status == "ACTIVE" and view.trial_ends_at is None
