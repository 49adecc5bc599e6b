"""The demo is built through the services a customer uses, so every figure in it is one the rules produce."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from billing_graphql.db.models import AuditEvent, Invoice, InvoiceLine, InvoiceLineKind, Subscription
from billing_graphql.demo import DEMO_HISTORY, seed_demo
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.helpers import T0


async def test_demo_subscription_was_paid_for_before_it_was_prorated(db, settings):
    await seed_demo(db, T0, settings)
    async with db.read() as session:
        subscription = await session.scalar(select(Subscription))
        invoices = (await session.scalars(select(Invoice).order_by(Invoice.number))).all()
        lines = {invoice.id: (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                                     .order_by(InvoiceLine.position))).all() for invoice in invoices}
        overrides = (await session.scalars(select(AuditEvent.action)
                                           .where(AuditEvent.action == "subscription.admin_updated"))).all()
    assert overrides == []  # no status forced by staff
    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.trial_ends_at is None
    first, upgrade = invoices
    # Starter, paid in full for its first month: 299000 + PPN 32890
    assert (first.billing_reason.value, first.total, first.status) == ("SUBSCRIPTION_CREATE", 331890, InvoiceStatus.PAID)
    assert first.period_start == T0 - DEMO_HISTORY
    # The upgrade credits only the unused part of that paid month and charges Growth for the same part.
    credit, charge = lines[upgrade.id]
    assert (credit.kind, charge.kind) == (InvoiceLineKind.PRORATION_CREDIT, InvoiceLineKind.PRORATION_CHARGE)
    period = first.period_end - first.period_start
    fraction = Decimal((first.period_end - T0) / timedelta(seconds=1)) / Decimal(period / timedelta(seconds=1))
    assert 0 < fraction < 1
    assert -credit.amount == round(299000 * fraction) and charge.amount == round(599000 * fraction)
    assert upgrade.status is InvoiceStatus.PAID and upgrade.period_end == first.period_end


async def test_portal_shows_no_trial_end_on_an_active_subscription(db, settings):
    from billing_graphql.http.portal.views import SubscriptionView
    from billing_graphql.services.portal.pages import load_portal_data

    await seed_demo(db, T0, settings)
    async with db.read() as session:
        subscription = await session.scalar(select(Subscription))
    # even one whose trial ended (its trial_ends_at kept as history)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.trial_ends_at = T0 - timedelta(days=1)
    view = SubscriptionView.of(await load_portal_data(db, subscription.organization_id, T0))
    assert view.status == "ACTIVE" and view.trial_ends_at is None
