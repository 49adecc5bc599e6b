"""Checkout: start (first invoice, checkout row, gateway order), confirm (signature, payment, invoice
PAID, subscription ACTIVE, coupon counted), replays, replaced checkouts, and Razorpay over
httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from billing_graphql.db.models import (
    AuditEvent,
    BillingReason,
    CheckoutSession,
    CheckoutStatus,
    Coupon,
    CouponDuration,
    CouponRedemption,
    Invoice,
    InvoiceLine,
    Organization,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Subscription,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod, period_at
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.razorpay import RazorpayGateway
from billing_graphql.gateways.sandbox import sign_payment
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.payments.checkout import confirm_checkout, start_checkout
from billing_graphql.services.platform.organizations import create_organization
from tests.factories import (
    count_rows,
    database_state,
    make_coupon,
    make_plan,
    make_subscription,
    set_agents,
    set_credit,
)
from tests.helpers import T0

CONFIRMED_AT = T0 + timedelta(minutes=7)


async def start(db, org_id, settings, plan=None, *, period=BillingPeriod.MONTHLY, coupon=None, gateway="sandbox",
                overrides=None, now=T0):
    return await start_checkout(db, None, organization_id=org_id, choice=PlanChoice(plan.id if plan else None, period, coupon),
                                gateway=gateway,
                                gateways=GatewayRegistry(settings, overrides=overrides), now=now)


async def confirm(db, settings, order_id, payment_id="pay_sandbox_1", *, signature=None, scope=None, key=None,
                  overrides=None, now=CONFIRMED_AT):
    signature = sign_payment(order_id, payment_id) if signature is None else signature
    return await confirm_checkout(db, None, organization_scope=scope, order_id=order_id, payment_id=payment_id,
                                  signature=signature, idempotency_key=key,
                                  gateways=GatewayRegistry(settings, overrides=overrides), now=now)


async def get(db, model, key):
    async with db.read() as session:
        return await session.get(model, key)


async def test_start_writes_the_open_first_invoice_without_subscription_and_an_order(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, per_agent=50000, included_agents=1, trial_days=14)
    await set_agents(db, org.id, 3)
    coupon = await make_coupon(db, code="WELCOME10", percent_off=10)
    started = await start(db, org.id, app_settings, plan, coupon="welcome10")
    invoice = started.invoice
    assert invoice.status is InvoiceStatus.OPEN and invoice.number == "INV-202601-000001"
    assert invoice.subscription_id is None and invoice.billing_reason is BillingReason.SUBSCRIPTION_CREATE
    first = period_at(T0, BillingPeriod.MONTHLY, 0)
    assert (invoice.period_start, invoice.period_end) == (first.start, first.end)
    # 299,000 + 2 extra agents x 50,000 = 399,000; 10% off = 359,100; PPN 12% of 11/12 = 39,501
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (399000, 39900, 39501, 398601)
    assert started.gateway == "sandbox" and started.key_id == "sandbox"
    assert (started.amount, started.currency) == (398601, "IDR")
    assert started.order_id.startswith("order_sandbox_") and invoice.gateway_order_id == started.order_id
    checkout = await get(db, CheckoutSession, started.checkout.id)
    assert (checkout.status, checkout.plan_id, checkout.billing_period, checkout.coupon_code, checkout.agent_count,
            checkout.gateway) == (CheckoutStatus.OPEN, plan.id, BillingPeriod.MONTHLY, "WELCOME10", 3, "sandbox")
    assert await count_rows(db, Subscription) == 0
    assert (await get(db, Coupon, coupon.id)).current_uses == 0  # counted on confirmation only


async def test_confirm_pays_the_invoice_and_starts_the_subscription_active(db, org, app_settings):
    plan = await make_plan(db, monthly=299000, trial_days=14)
    coupon = await make_coupon(db, code="THREEMONTHS", percent_off=20, duration=CouponDuration.REPEATING, months=3)
    started = await start(db, org.id, app_settings, plan, coupon="THREEMONTHS")
    result = await confirm(db, app_settings, started.order_id, "pay_abc")
    sub = result.subscription
    assert sub.status is SubscriptionStatus.ACTIVE and sub.trial_ends_at is None  # no trial at checkout
    first = period_at(CONFIRMED_AT, BillingPeriod.MONTHLY, 0)
    assert (sub.period_anchor, sub.current_period_start, sub.current_period_end) == (CONFIRMED_AT, first.start,
                                                                                     first.end)
    assert sub.payment_gateway == "sandbox" and sub.plan_id == plan.id
    assert sub.coupon_id == coupon.id and sub.coupon_periods_remaining == 2  # the first period used one
    invoice = await get(db, Invoice, started.invoice.id)
    assert invoice.status is InvoiceStatus.PAID and invoice.paid_at == CONFIRMED_AT
    assert invoice.amount_paid == invoice.total and invoice.subscription_id == sub.id
    assert (invoice.period_start, invoice.period_end) == (first.start, first.end)
    async with db.read() as session:
        lines = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))).all()
    assert lines and all((line.period_start, line.period_end) == (first.start, first.end) for line in lines)
    payment = result.payment
    assert (payment.status, payment.amount, payment.gateway, payment.gateway_payment_id) == (
        PaymentStatus.SUCCEEDED, invoice.total, "sandbox", "pay_abc")
    method = await get(db, PaymentMethod, payment.payment_method_id)  # the paying card, saved as the default
    assert (method.gateway_payment_method_id, method.is_default) == ("pay_abc", True)
    assert (await get(db, Coupon, coupon.id)).current_uses == 1
    assert await count_rows(db, CouponRedemption, CouponRedemption.subscription_id == sub.id) == 1
    checkout = await get(db, CheckoutSession, started.checkout.id)
    assert (checkout.status, checkout.gateway_payment_id, checkout.payment_id, checkout.subscription_id,
            checkout.completed_at) == (CheckoutStatus.COMPLETED, "pay_abc", payment.id, sub.id, CONFIRMED_AT)


async def test_an_invalid_signature_changes_nothing(db, org, app_settings):
    plan = await make_plan(db)
    started = await start(db, org.id, app_settings, plan)
    state = await database_state(db)
    good = sign_payment(started.order_id, "pay_1")
    flipped = ("0" if good[0] != "0" else "1") + good[1:]
    for signature in (flipped, "", sign_payment(started.order_id, "pay_2")):
        with pytest.raises(BillingError) as raised:
            await confirm(db, app_settings, started.order_id, "pay_1", signature=signature)
        assert (raised.value.code, raised.value.field) == (BillingErrorCode.INVALID_SIGNATURE, "signature")
    assert await database_state(db) == state


async def test_replays_return_the_same_result_and_another_payment_is_refused(db, org, app_settings):
    plan = await make_plan(db)
    started = await start(db, org.id, app_settings, plan)
    first = await confirm(db, app_settings, started.order_id, "pay_1")
    state = await database_state(db)
    again = await confirm(db, app_settings, started.order_id, "pay_1")
    assert again.replayed and (again.subscription.id, again.invoice.id, again.payment.id) == (
        first.subscription.id, first.invoice.id, first.payment.id)
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, started.order_id, "pay_2")  # correctly signed, other payment
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.VALIDATION, "paymentId")
    assert await database_state(db) == state


async def test_idempotency_key(db, org, app_settings):
    plan = await make_plan(db)
    started = await start(db, org.id, app_settings, plan)
    first = await confirm(db, app_settings, started.order_id, "pay_1", key="conf-1")
    again = await confirm(db, app_settings, started.order_id, "pay_1", key="conf-1")
    assert again.replayed and again.subscription.id == first.subscription.id
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, started.order_id, "pay_2", key="conf-1")
    assert raised.value.code is BillingErrorCode.IDEMPOTENCY_KEY_REUSED


async def test_start_is_refused_while_a_subscription_is_live_and_writes_nothing(db, org, app_settings):
    await make_subscription(db, org.id, status=SubscriptionStatus.PAST_DUE)
    plan = await make_plan(db)
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await start(db, org.id, app_settings, plan)
    assert raised.value.code is BillingErrorCode.ALREADY_SUBSCRIBED
    assert await database_state(db) == state


@pytest.mark.parametrize(("kwargs", "code", "field"), [
    ({"coupon": "NOPE"}, BillingErrorCode.COUPON_INVALID, "couponCode"),
    ({"gateway": "paypal"}, BillingErrorCode.VALIDATION, "gateway"),
    ({"gateway": "razorpay"}, BillingErrorCode.VALIDATION, "gateway"),  # not configured
])
async def test_start_errors_write_nothing(db, org, app_settings, kwargs, code, field):
    plan = await make_plan(db)
    await make_coupon(db, code="USEDUP", max_uses=1, current_uses=1)
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await start(db, org.id, app_settings, plan, **kwargs)
    assert (raised.value.code, raised.value.field) == (code, field)
    assert await database_state(db) == state


async def test_an_exhausted_coupon_is_refused_at_start(db, org, app_settings):
    plan = await make_plan(db)
    await make_coupon(db, code="USEDUP", max_uses=1, current_uses=1)
    with pytest.raises(BillingError) as raised:
        await start(db, org.id, app_settings, plan, coupon="USEDUP")
    assert raised.value.code is BillingErrorCode.COUPON_EXHAUSTED


async def test_a_newer_checkout_replaces_the_open_one(db, org, app_settings):
    plan = await make_plan(db, monthly=100000)
    await set_credit(db, org.id, 30000)
    old = await start(db, org.id, app_settings, plan)
    assert old.invoice.credit_applied == 30000 and (await get(db, Organization, org.id)).credit_balance == 0
    new = await start(db, org.id, app_settings, plan, period=BillingPeriod.ANNUAL)
    assert (await get(db, CheckoutSession, old.checkout.id)).status is CheckoutStatus.EXPIRED
    voided = await get(db, Invoice, old.invoice.id)
    assert voided.status is InvoiceStatus.VOID and voided.voided_at == T0
    assert new.invoice.credit_applied == 30000  # the credit came back and went to the new invoice
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, old.order_id)
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.VALIDATION, "orderId")
    result = await confirm(db, app_settings, new.order_id)
    assert result.subscription.billing_period is BillingPeriod.ANNUAL


async def test_another_organizations_order_is_not_found(db, org, app_settings):
    other = await create_organization(db, None, name="Globex", external_id="globex-c", now=T0)
    plan = await make_plan(db)
    started = await start(db, other.id, app_settings, plan)
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, started.order_id, scope=org.id)
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.NOT_FOUND, "orderId")
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, "order_unknown")
    assert raised.value.code is BillingErrorCode.NOT_FOUND


async def test_a_subscription_started_meanwhile_refuses_the_confirmation(db, org, app_settings):
    plan = await make_plan(db)
    started = await start(db, org.id, app_settings, plan)
    await make_subscription(db, org.id)
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await confirm(db, app_settings, started.order_id)
    assert raised.value.code is BillingErrorCode.ALREADY_SUBSCRIBED
    assert await database_state(db) == state


async def test_a_coupon_used_up_before_confirmation_keeps_the_paid_price_but_is_not_counted(db, org, app_settings):
    plan = await make_plan(db)
    coupon = await make_coupon(db, code="LAST1", max_uses=1, duration=CouponDuration.FOREVER)
    started = await start(db, org.id, app_settings, plan, coupon="LAST1")
    async with db.write() as session:  # somebody else takes the last use
        await session.execute(update(Coupon).where(Coupon.id == coupon.id).values(current_uses=1))
    result = await confirm(db, app_settings, started.order_id)
    assert result.invoice.status is InvoiceStatus.PAID and result.invoice.discount > 0
    assert result.subscription.coupon_id is None
    assert (await get(db, Coupon, coupon.id)).current_uses == 1
    async with db.read() as session:
        audit = await session.scalar(select(AuditEvent).where(AuditEvent.action == "checkout.confirmed"))
    assert "used up" in audit.reason


async def test_nothing_due_cannot_be_checked_out(db, org, app_settings):
    plan = await make_plan(db, monthly=100000)
    await make_coupon(db, code="FREE", percent_off=100)
    with pytest.raises(BillingError) as raised:
        await start(db, org.id, app_settings, plan, coupon="FREE")
    assert (raised.value.code, raised.value.field) == (BillingErrorCode.VALIDATION, "planId")
    assert await count_rows(db, Invoice) == 0


async def test_concurrent_confirmations_of_one_order_start_one_subscription(db, org, app_settings, backend):
    if backend != "postgres":
        pytest.skip("the race is meaningful on PostgreSQL (SQLite serializes writers)")
    plan = await make_plan(db)
    started = await start(db, org.id, app_settings, plan)
    results = await asyncio.gather(*(confirm(db, app_settings, started.order_id, "pay_1") for _ in range(3)))
    assert len({result.subscription.id for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert await count_rows(db, Subscription) == 1 and await count_rows(db, Payment) == 1


# ---- Razorpay over httpx.MockTransport --------------------------------------------------------

KEY_ID, KEY_SECRET = "rzp_test_key", "rzp_test_secret"


class FakeRazorpay:
    """The customers, orders and payments endpoints as Razorpay answers them."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []
        self.orders: dict[str, dict] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"code": "SERVER_ERROR", "description": "boom"}})
        if request.url.path == "/v1/customers":
            return httpx.Response(200, json={"id": "cust_RZP1", "entity": "customer"})
        if request.method == "GET" and request.url.path.startswith("/v1/payments/"):
            payment_id = request.url.path.rsplit("/", 1)[1]
            order_id = next(iter(self.orders))
            return httpx.Response(200, json={"id": payment_id, "entity": "payment", "order_id": order_id,
                                             "method": "card", "token_id": "token_RZP7",
                                             "card": {"network": "Visa", "last4": "1111"}})
        body = json.loads(request.content)
        order_id = f"order_RZP{len(self.requests)}"
        self.orders[order_id] = body
        return httpx.Response(200, json={"id": order_id, "entity": "order",
                                         "amount": body["amount"], "currency": body["currency"],
                                         "receipt": body["receipt"], "status": "created"})

    def gateways(self, settings):
        """Gateway overrides: Razorpay talking to this fake over a mock transport."""
        return {"razorpay": RazorpayGateway.from_settings(settings, transport=httpx.MockTransport(self.handler))}


@pytest.fixture
def razorpay_settings(app_settings):
    return replace(app_settings, razorpay_key_id=KEY_ID, razorpay_key_secret=KEY_SECRET)


async def test_razorpay_is_the_default_when_configured_and_confirms_with_its_key_secret(db, org, razorpay_settings):
    fake = FakeRazorpay()
    plan = await make_plan(db, monthly=299000)
    started = await start(db, org.id, razorpay_settings, plan, gateway=None, overrides=fake.gateways(razorpay_settings))
    assert (started.gateway, started.order_id, started.key_id) == ("razorpay", "order_RZP2", KEY_ID)
    customer, request = fake.requests
    assert (customer.method, customer.url.path) == ("POST", "/v1/customers")
    assert request.method == "POST" and request.url.path == "/v1/orders"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
    sent = json.loads(request.content)
    # Razorpay counts IDR in sen (ISO exponent 2); we keep whole rupiah.
    assert (sent["amount"], sent["currency"], sent["receipt"]) == (started.amount * 100, "IDR", started.invoice.number)
    # The order asks Razorpay to save the paying method for the organization's customer.
    assert (sent["customer_id"], sent["token"]) == ("cust_RZP1", {"frequency": "as_presented"})
    # Razorpay Checkout hands back razorpay_signature = HMAC-SHA256(order_id|payment_id, key secret).
    signature = sign_payment("order_RZP2", "pay_RZP9", secret=KEY_SECRET)
    with pytest.raises(BillingError) as raised:  # the sandbox's secret is not Razorpay's
        await confirm(db, razorpay_settings, "order_RZP2", "pay_RZP9", overrides=fake.gateways(razorpay_settings))
    assert raised.value.code is BillingErrorCode.INVALID_SIGNATURE
    result = await confirm(db, razorpay_settings, "order_RZP2", "pay_RZP9", signature=signature,
                           overrides=fake.gateways(razorpay_settings))
    assert result.payment.gateway == "razorpay" and result.payment.gateway_payment_id == "pay_RZP9"
    assert result.subscription.payment_gateway == "razorpay" and result.invoice.status is InvoiceStatus.PAID
    # The payment's reusable token is saved as the default method, and the payment points at it.
    async with db.read() as session:
        [method] = (await session.scalars(select(PaymentMethod).where(PaymentMethod.organization_id == org.id))).all()
    assert (method.gateway, method.gateway_payment_method_id, method.is_default) == ("razorpay", "token_RZP7", True)
    assert (method.brand, method.last4, method.label) == ("Visa", "1111", "Visa ending 1111")
    assert result.payment.payment_method_id == method.id


async def test_sandbox_can_be_chosen_even_when_razorpay_is_configured(db, org, razorpay_settings):
    fake = FakeRazorpay()
    plan = await make_plan(db)
    started = await start(db, org.id, razorpay_settings, plan, gateway="sandbox",
                          overrides=fake.gateways(razorpay_settings))
    assert started.gateway == "sandbox" and fake.requests == []


async def test_a_gateway_failure_rolls_everything_back_and_keeps_numbers_gapless(db, org, razorpay_settings):
    fake = FakeRazorpay(status=500)
    plan = await make_plan(db)
    state = await database_state(db)
    with pytest.raises(BillingError) as raised:
        await start(db, org.id, razorpay_settings, plan, gateway="razorpay",
                    overrides=fake.gateways(razorpay_settings))
    assert raised.value.code is BillingErrorCode.PAYMENT_FAILED
    assert await database_state(db) == state
    fake.status = 200
    started = await start(db, org.id, razorpay_settings, plan, gateway="razorpay",
                          overrides=fake.gateways(razorpay_settings))
    assert started.invoice.number == "INV-202601-000001"
