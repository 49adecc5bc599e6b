"""A renewal made by the billing run's batch (``services.billing.renewal_batch``) writes what the
single path (``jobs.billing_run.run_subscription``) writes for the same subscription, row for row
and event for event: subscriptions, organizations, invoices and their lines, payments, outbox
events (in their order), the credit ledger, invoice items, the buyer's copy on the invoice and the
MRR history.

Each case is set up twice, on two organizations alike in everything but their ids; one is renewed
by the single path, the other by one batch; then both sides' rows are compared with their ids (and
what derives from them: invoice numbers, processor keys, global ids) replaced by labels."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from billing_graphql.db.models import (
    CouponDuration,
    CreditBalanceTransaction,
    Invoice,
    InvoiceItem,
    InvoiceLine,
    InvoiceParties,
    Organization,
    OutboxEvent,
    Payment,
    PaymentMethod,
    Subscription,
    SubscriptionMrrRevision,
)
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.proration import Effective
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_config, run_subscription
from billing_graphql.services.billing.invoice_items import ItemInput, create_invoice_item
from billing_graphql.services.billing.renewal_batch import renew_batch
from billing_graphql.services.platform.billing_details import update_billing_details
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from billing_graphql.services.subscriptions.plan_changes import attach_addon, change_plan
from tests.factories import (
    make_addon, make_coupon, make_organization, make_payment_method, make_plan, set_agents, set_credit,
    set_overage_price,
)
from tests.services.billing_run_helpers import set_counter

T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)
NOW = datetime(2026, 2, 10, 13, tzinfo=UTC)  # every monthly period started at T0 has ended


async def _start(db, settings, org_id, plan, *, period=BillingPeriod.MONTHLY, coupon=None, at=T0):
    result = await subscribe(db, None, organization_id=org_id, choice=PlanChoice(plan.id, period, coupon),
                             payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings),
                             now=at)
    return result.subscription


async def _catalog(db):
    """The plans, add-ons and coupon the cases share (catalog rows: the same for both sides)."""
    pro = await make_plan(db, name="Pro", monthly=200000, per_agent=10000, included_agents=2, trial_days=0,
                          limits={"messages": 100})
    await set_overage_price(db, pro.id, 50)
    return {
        "pro": pro,
        "basic": await make_plan(db, name="Basic", monthly=99000, per_agent=5000, included_agents=1, trial_days=0),
        "trial": await make_plan(db, name="Trial", monthly=150000, trial_days=31),
        "flat": await make_addon(db, name="Reports", monthly=30000),
        "seat": await make_addon(db, name="AI", monthly=5000, per_agent=True),
        "coupon": await make_coupon(db, code="TWOMONTHS", percent_off=10, duration=CouponDuration.REPEATING,
                                    months=2),
    }


# Each case: (name, set-up of one organization). The set-up runs once per side.

async def _plain(db, settings, org, c):
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 4, T0)
    await _start(db, settings, org.id, c["basic"])


async def _declined(db, settings, org, c):
    await make_payment_method(db, org.id)
    await _start(db, settings, org.id, c["basic"])
    async with db.write() as session:  # the card is declined from now on
        await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == org.id)
                              .values(gateway_payment_method_id="pm_card_chargeDeclined"))


async def _no_card(db, settings, org, c):
    await make_payment_method(db, org.id)
    await _start(db, settings, org.id, c["basic"])
    async with db.write() as session:
        await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == org.id)
                              .values(is_default=False))


async def _everything(db, settings, org, c):
    """Add-ons, a coupon's month, capped overage, account credit, a pending item, billing details."""
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 3, T0)
    await _start(db, settings, org.id, c["pro"], coupon="twomonths")
    for addon in (c["flat"], c["seat"]):
        await attach_addon(db, None, organization_id=org.id, addon_id=addon.id, quantity=1,
                           gateways=GatewayRegistry(settings), now=T0)
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.organization_id == org.id)
                              .values(spending_cap=30000))
    await set_counter(db, org.id, "messages", "2026-01", 1000, T0)
    await set_credit(db, org.id, 5000)
    await create_invoice_item(db, None, organization_id=org.id, item=ItemInput("Setup help", Decimal("12500")),
                              idempotency_key=None, now=T0 + timedelta(days=3))
    await update_billing_details(db, None, organization_id=org.id, legal_name="PT Contoh", address="Jl. Sudirman 1",
                                 country="ID", tax_id="01.234.567.8-901.000", now=T0 + timedelta(days=4))


async def _credit_covers_it(db, settings, org, c):
    await make_payment_method(db, org.id)
    await _start(db, settings, org.id, c["basic"])
    await set_credit(db, org.id, 500000)


async def _trial_ends(db, settings, org, c):
    await make_payment_method(db, org.id)
    sub = await _start(db, settings, org.id, c["trial"])
    async with db.write() as session:  # its notice went out already: the trial's end is its only step
        await session.execute(update(Subscription).where(Subscription.id == sub.id)
                              .values(trial_will_end_sent_at=T0 + timedelta(days=20)))


async def _scheduled_change(db, settings, org, c):
    await make_payment_method(db, org.id)
    await set_agents(db, org.id, 2, T0)
    await _start(db, settings, org.id, c["basic"])
    await change_plan(db, None, organization_id=org.id, plan_id=c["pro"].id, billing_period=BillingPeriod.ANNUAL,
                      effective=Effective.PERIOD_END, gateways=GatewayRegistry(settings), now=T0 + timedelta(days=5))


CASES = [_plain, _declined, _no_card, _everything, _credit_covers_it, _trial_ends, _scheduled_change]


class Labels:
    """Ids (and what derives from them) replaced by labels, the same on both sides of a case."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def name(self, value: object, label: str) -> None:
        self.names[str(value)] = label

    def __call__(self, value):
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        if isinstance(value, uuid.UUID):
            return self.names.get(str(value), value)
        if isinstance(value, str):
            if value in self.names:
                return self.names[value]
            try:  # a Relay global id: base64 of Type:id
                type_name, _, key = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return value
            return f"{type_name}:{self.names[key]}" if key in self.names else value
        return value


def _columns(row, *left_out: str) -> dict:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns if column.key not in left_out}


async def _side(db, org_id: uuid.UUID) -> dict:
    """What the organization's renewal wrote (and the rows it changed), labelled."""
    labels = Labels()
    labels.name(org_id, "org")
    async with db.read() as session:
        organization = await session.get(Organization, org_id)
        labels.name(organization.external_id, "external id")
        (sub,) = (await session.scalars(select(Subscription).where(Subscription.organization_id == org_id))).all()
        labels.name(sub.id, "subscription")
        invoices = (await session.scalars(select(Invoice).where(Invoice.organization_id == org_id)
                                          .order_by(Invoice.created_at, Invoice.number))).all()
        for index, invoice in enumerate(invoices):
            labels.name(invoice.id, f"invoice{index}")
            labels.name(invoice.number, f"number{index}")
        payments = (await session.scalars(select(Payment).where(Payment.organization_id == org_id)
                                          .order_by(Payment.created_at, Payment.amount))).all()
        for index, payment in enumerate(payments):
            labels.name(payment.id, f"payment{index}")
            labels.name(payment.idempotency_key, f"key{index}")
            labels.name(payment.gateway_payment_id, f"processor{index}")
            labels.name(payment.payment_method_id, "card")
        invoice_ids = [invoice.id for invoice in invoices]
        lines = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id.in_(invoice_ids)))).all()
        lines = sorted(lines, key=lambda line: (invoice_ids.index(line.invoice_id), line.position))
        parties = (await session.scalars(select(InvoiceParties)
                                         .where(InvoiceParties.invoice_id.in_(invoice_ids)))).all()
        ledger = (await session.scalars(select(CreditBalanceTransaction)
                                        .where(CreditBalanceTransaction.organization_id == org_id)
                                        .order_by(CreditBalanceTransaction.sequence))).all()
        items = (await session.scalars(select(InvoiceItem).where(InvoiceItem.organization_id == org_id))).all()
        for index, item in enumerate(items):
            labels.name(item.id, f"item{index}")
        # The order the outbox is read in: (created_at, id), ids in write order.
        outbox = (await session.scalars(select(OutboxEvent).where(OutboxEvent.organization_id == org_id)
                                        .order_by(OutboxEvent.created_at, OutboxEvent.id))).all()
        revisions = (await session.scalars(select(SubscriptionMrrRevision)
                                           .where(SubscriptionMrrRevision.organization_id == org_id)
                                           .order_by(SubscriptionMrrRevision.valid_from,
                                                     SubscriptionMrrRevision.seq))).all()
    return labels({
        "organization": _columns(organization),
        "subscription": _columns(sub),
        "invoices": [_columns(invoice) for invoice in invoices],
        "lines": [_columns(line, "id") for line in lines],
        "payments": [_columns(payment) for payment in payments],
        "parties": [_columns(row) for row in parties],
        "ledger": [_columns(row, "id") for row in ledger],
        "items": [_columns(row) for row in items],
        "events": [(event.event_type, event.created_at, event.payload, event.dispatched_at) for event in outbox],
        "revisions": [_columns(row, "id") for row in revisions],
    })


async def test_a_batch_renewal_writes_what_the_single_path_writes(db, settings):
    catalog = await _catalog(db)
    pairs = []
    for case in CASES:
        single = await make_organization(db, name=case.__name__)
        batched = await make_organization(db, name=case.__name__)
        for org in (single, batched):
            await case(db, settings, org, catalog)
        pairs.append((case.__name__, single, batched))
    config = run_config(settings, GatewayRegistry(settings))
    async with db.read() as session:
        subscription_of = dict((await session.execute(select(Subscription.organization_id, Subscription.id))).all())
    for _, single, _ in pairs:
        await run_subscription(db, subscription_of[single.id], NOW, config, organization_id=single.id)
    batch = await renew_batch(db, config, NOW, after=None, limit=100, excluded=set())
    # Every batched organization was renewed by the batch itself, none handed to the single path.
    assert (batch.claimed, batch.errors, batch.rest) == (len(CASES), 0, [])
    assert len(batch.tally.invoice_ids) == len(CASES)
    for name, single, batched in pairs:
        expected, got = await _side(db, single.id), await _side(db, batched.id)
        assert got["events"], name
        for kind in expected:
            assert got[kind] == expected[kind], (name, kind)
