"""pay_invoice: paying an OPEN invoice, recovering a PAST_DUE/UNPAID subscription, errors that write
nothing, idempotency, a pending payment settled first, and a race on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import Invoice, OutboxEvent, Payment, PaymentMethod, PaymentStatus, Subscription
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.platform.idempotency import derived_id
from billing_graphql.services.billing.invoice_payments import pay_invoice
from billing_graphql.services.billing.charging import payment_key
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import count_rows, database_state, make_invoice, make_payment, make_payment_method, make_plan
from tests.helpers import T0

LATER = T0 + timedelta(days=2)


async def pay(db, settings, invoice_id, *, scope=None, method=None, key=None, now=LATER):
    return await pay_invoice(db, None, invoice_id=invoice_id, organization_scope=scope, payment_method_id=method,
                             idempotency_key=key, gateways=GatewayRegistry(settings), now=now)


async def past_due(db, org, settings, *, status=SubscriptionStatus.PAST_DUE):
    """A subscription whose first charge was declined: PAST_DUE (or UNPAID), its invoice OPEN,
    with dunning counters set; the declining card stays the default."""
    plan = await make_plan(db, monthly=299000, trial_days=0)
    # A declined first payment creates no subscription (issue 18), so the first charge meets a
    # processor fault (PENDING, the subscription kept) and is then settled as declined.
    card = await make_payment_method(db, org.id, token="pm_card_error")
    started = await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                              payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings),
                              now=T0)
    assert started.payment.status is PaymentStatus.PENDING
    async with db.write() as session:
        await session.execute(update(Payment).where(Payment.id == started.payment.id).values(
            status=PaymentStatus.FAILED, failure_code="card_declined", failure_message="Your card was declined."))
        await session.execute(update(PaymentMethod).where(PaymentMethod.id == card.id).values(
            gateway_payment_method_id="pm_card_declined"))
        await session.execute(update(Subscription).where(Subscription.id == started.subscription.id).values(
            status=status, retry_count=3, last_retry_at=T0 + timedelta(days=1),
            next_retry_at=T0 + timedelta(days=3)))
    return started.subscription, started.invoice


async def test_paying_the_open_invoice_returns_a_past_due_subscription_to_active(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings)
    visa = await make_payment_method(db, org.id, token="pm_card_visa", is_default=False)
    result = await pay(db, app_settings, invoice.id, scope=org.id, method=visa.id)
    assert result.payment_error is None
    assert result.invoice.status is InvoiceStatus.PAID
    assert result.invoice.amount_paid == invoice.total and result.invoice.paid_at == LATER
    assert result.payment.status is PaymentStatus.SUCCEEDED and result.payment.payment_method_id == visa.id
    assert result.payment.amount == invoice.total
    async with db.read() as session:
        stored = await session.get(Subscription, subscription.id)
    assert stored.status is SubscriptionStatus.ACTIVE
    assert (stored.retry_count, stored.last_retry_at, stored.next_retry_at) == (0, None, None)
    assert result.subscription.id == subscription.id and result.subscription.status is SubscriptionStatus.ACTIVE
    async with db.read() as session:
        events = (await session.scalars(select(OutboxEvent.event_type).where(OutboxEvent.created_at == LATER))).all()
    assert sorted(events) == ["invoice.paid", "subscription.updated"]


async def test_unpaid_subscription_recovers_too(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings, status=SubscriptionStatus.UNPAID)
    visa = await make_payment_method(db, org.id, token="pm_card_visa", is_default=False)
    result = await pay(db, app_settings, invoice.id, method=visa.id)  # super-admin: no scope
    assert result.subscription.status is SubscriptionStatus.ACTIVE


async def test_a_decline_is_payment_failed_and_the_invoice_stays_open(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings)
    before = await count_rows(db, Payment)
    result = await pay(db, app_settings, invoice.id, scope=org.id)  # the default card declines
    error = result.payment_error
    assert error is not None and error.code is BillingErrorCode.PAYMENT_FAILED and "card_declined" in error.message
    assert result.invoice.status is InvoiceStatus.OPEN and result.invoice.amount_paid == 0
    assert result.payment.status is PaymentStatus.FAILED
    assert await count_rows(db, Payment) == before + 1
    async with db.read() as session:
        stored = await session.get(Subscription, subscription.id)
    assert stored.status is SubscriptionStatus.PAST_DUE and stored.retry_count == 3


async def test_subscription_stays_past_due_while_another_invoice_is_open(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings)
    await make_invoice(db, org.id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    visa = await make_payment_method(db, org.id, token="pm_card_visa", is_default=False)
    result = await pay(db, app_settings, invoice.id, method=visa.id)
    assert result.invoice.status is InvoiceStatus.PAID
    assert result.subscription.status is SubscriptionStatus.PAST_DUE


async def test_invoice_without_subscription_is_paid(db, org, app_settings):
    invoice = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    await make_payment_method(db, org.id, token="pm_card_visa")
    result = await pay(db, app_settings, invoice.id, scope=org.id)
    assert result.invoice.status is InvoiceStatus.PAID and result.subscription is None


# UNCOLLECTIBLE may still be paid (issue 21): tests/api/test_invoice_lifecycle_api.py
@pytest.mark.parametrize("status", [InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.DRAFT,
                                    InvoiceStatus.REFUNDED])
async def test_only_an_open_invoice_is_paid(db, org, app_settings, status):
    invoice = await make_invoice(db, org.id, status=status)
    await make_payment_method(db, org.id, token="pm_card_visa")
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, invoice.id, scope=org.id, key="k1")
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.VALIDATION, "invoiceId")
    assert await database_state(db) == state


async def test_another_organizations_invoice_or_method_is_not_found(db, org, app_settings):
    other = await create_organization(db, None, name="Globex", external_id="globex-x", now=T0)
    theirs = await make_invoice(db, other.id, status=InvoiceStatus.OPEN)
    ours = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    their_card = await make_payment_method(db, other.id, token="pm_card_visa")
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, theirs.id, scope=org.id)
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.NOT_FOUND, "invoiceId")
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, uuid.uuid4(), scope=None)
    assert raised.value.code is BillingErrorCode.NOT_FOUND
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, ours.id, scope=org.id, method=their_card.id)
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.NOT_FOUND, "paymentMethodId")
    assert await database_state(db) == state


async def test_no_payment_method_is_payment_required_and_writes_nothing(db, org, app_settings):
    invoice = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, invoice.id, scope=org.id, key="k1")
    assert raised.value.code is BillingErrorCode.PAYMENT_REQUIRED
    assert await database_state(db) == state


async def test_same_key_replays_and_other_input_is_refused(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings)
    visa = await make_payment_method(db, org.id, token="pm_card_visa", is_default=False)
    first = await pay(db, app_settings, invoice.id, scope=org.id, method=visa.id, key="pay-1")
    assert first.payment.id == derived_id(org.id, "pay_invoice", "pay-1", "payment")
    assert first.payment.idempotency_key == payment_key(first.payment.id)
    payments = await count_rows(db, Payment)
    again = await pay(db, app_settings, invoice.id, scope=org.id, method=visa.id, key="pay-1")
    assert again.replayed and again.payment.id == first.payment.id and again.invoice.status is InvoiceStatus.PAID
    assert await count_rows(db, Payment) == payments
    with pytest.raises(BillingError) as raised:
        await pay(db, app_settings, invoice.id, scope=org.id, method=None, key="pay-1")
    assert raised.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED


async def test_a_replayed_decline_stays_a_decline_and_a_new_key_pays(db, org, app_settings):
    subscription, invoice = await past_due(db, org, app_settings)
    declined = await pay(db, app_settings, invoice.id, scope=org.id, key="try-1")
    assert declined.payment_error is not None
    replay = await pay(db, app_settings, invoice.id, scope=org.id, key="try-1")
    assert replay.replayed and replay.payment.id == declined.payment.id and replay.payment_error is not None
    async with db.write() as session:  # the customer fixes the default card
        await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == org.id)
                              .values(gateway_payment_method_id="pm_card_visa"))
    paid = await pay(db, app_settings, invoice.id, scope=org.id, key="try-2")
    assert paid.payment_error is None and paid.subscription.status is SubscriptionStatus.ACTIVE


async def test_a_pending_payment_is_settled_before_charging_again(db, org, app_settings):
    invoice = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    visa = await make_payment_method(db, org.id, token="pm_card_visa")
    pending = await make_payment(db, invoice, status=PaymentStatus.PENDING, payment_method_id=visa.id)
    result = await pay(db, app_settings, invoice.id, scope=org.id)
    assert result.payment.id == pending.id and result.payment.status is PaymentStatus.SUCCEEDED
    assert result.invoice.status is InvoiceStatus.PAID
    assert await count_rows(db, Payment) == 1


async def test_a_processor_fault_leaves_the_payment_pending_and_is_not_charged_twice(db, org, app_settings):
    invoice = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    await make_payment_method(db, org.id, token="pm_card_error")
    first = await pay(db, app_settings, invoice.id, scope=org.id)
    assert first.payment.status is PaymentStatus.PENDING and "pending" in first.payment_error.message
    second = await pay(db, app_settings, invoice.id, scope=org.id)
    assert second.payment.id == first.payment.id and second.payment.status is PaymentStatus.PENDING
    assert await count_rows(db, Payment) == 1
    assert second.invoice.status is InvoiceStatus.OPEN


async def test_concurrent_payments_charge_once(db, org, app_settings, backend):
    if backend != "postgres":
        pytest.skip("the race is meaningful on PostgreSQL (SQLite serializes writers)")
    invoice = await make_invoice(db, org.id, status=InvoiceStatus.OPEN)
    await make_payment_method(db, org.id, token="pm_card_visa")
    outcomes = await asyncio.gather(
        *(pay(db, app_settings, invoice.id, scope=org.id, key=f"race-{n}") for n in range(2)),
        return_exceptions=True,
    )
    paid = [o for o in outcomes if not isinstance(o, BaseException)]
    failed = [o for o in outcomes if isinstance(o, BillingError)]
    assert len(paid) == 1 and len(failed) == 1 and failed[0].code is BillingErrorCode.VALIDATION
    assert await count_rows(db, Payment, Payment.status == PaymentStatus.SUCCEEDED) == 1
    async with db.read() as session:
        assert (await session.get(Invoice, invoice.id)).amount_paid == invoice.total
