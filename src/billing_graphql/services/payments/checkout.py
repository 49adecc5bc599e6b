"""Checkout (Razorpay-style): the customer pays the first invoice in the gateway's own widget, then
the subscription starts ACTIVE with no trial.

``start_checkout`` (one transaction under the organization's lock; ALREADY_SUBSCRIBED when a
live subscription exists):

- prices the first period of the plan (seats from the ``agents`` gauge, the coupon checked but
  not yet counted, tax, account credit) and writes that invoice OPEN and numbered, with
  ``billing_reason`` SUBSCRIPTION_CREATE and *no* subscription: a subscription waiting for its
  first payment is not one of our statuses, so it is created only on confirmation;
- keeps what the subscription will be on a ``checkout_sessions`` row (plan, billing period,
  coupon code, billed agent count, gateway; migration 0004_checkout). An organization has at
  most one OPEN checkout (a partial unique index): a newer one EXPIRES the older one, whose
  invoice becomes VOID and whose account credit is given back;
- creates the gateway order for the amount due with the invoice number as receipt and the
  gateway key ``checkout_<session id>``, for the organization's customer at the gateway (created
  on the first checkout and kept on ``organizations.gateway_customer_id``), asking the gateway to
  save the method that pays it; stores the order id on ``invoices.gateway_order_id`` (unique). A gateway failure rolls everything back (the number too: numbering stays gapless);
  an order left at the processor unpaid expires there.

``confirm_checkout``:

- finds the checkout by order id (another organization's order is NOT_FOUND) and checks the
  signature with the checkout's gateway before anything is written (INVALID_SIGNATURE);
- in one transaction under the lock: a SUCCEEDED payment for the amount due with the gateway's
  payment id (its row id derived from the order id, so the order can be paid once only), the
  invoice PAID and attached to a new ACTIVE subscription anchored at confirmation (the
  invoice's and its lines' period are re-stamped to that first period), the coupon redeemed
  atomically (``redeem_coupon``), the checkout COMPLETED;
- the method that paid is saved (``payment_methods.keep_checkout_method``: the gateway's
  reusable token, read before the transaction with ``saved_method``; the sandbox's is the
  payment id) and becomes the default when the organization has none, so the upgrades and
  renewals that follow are charged to it; the payment row points at it. A gateway that kept no
  token, or could not be asked, leaves no method (the audit row says so) and the checkout still
  completes: the customer has paid;
- replays are harmless: confirming a COMPLETED order again with the same payment id returns
  the same subscription, invoice and payment; another payment id for it is a VALIDATION error on
  ``paymentId``. An idempotency key is honoured as everywhere else (``services.idempotency``).

Honest limits: the price is the one quoted at start. If the coupon became unusable in between
(used up, expired), the payment is still recorded (the customer paid it) but the coupon is not
counted and later periods are not discounted; the audit row says so. An order of an EXPIRED
checkout that the customer pays anyway is refused here (VALIDATION on ``orderId``); that money
is refunded at the processor by an operator. An amount due of zero cannot be paid through an
order: that is a VALIDATION error (``subscribe`` covers it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    BillingReason,
    CheckoutSession,
    CheckoutStatus,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentStatus,
    Plan,
    Subscription,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.invoices import period_lines
from billing_graphql.domain.periods import period_at
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.gateways import GATEWAY_NAMES, GatewayError, GatewayRegistry, Order, PaymentGateway, SavedMethod
from billing_graphql.services.payments.payment_methods import keep_checkout_method
from billing_graphql.services.webhooks.objects import event_data
from billing_graphql.services.platform import idempotency
from billing_graphql.services.billing.charging import mark_paid, payment_key
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.services.billing.credit import add_account_credit
from billing_graphql.services.billing.invoicing import amount_due, create_invoice, draft_invoice, finalize_invoice, invoice_event_payload, tax_rule_for
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.coupons import (
    check_coupon,
    consume_coupon_period,
    coupon_discount,
    redeem_coupon,
)
from billing_graphql.services.subscriptions.loading import (
    already_subscribed,
    live_subscription,
    new_subscription,
    one_live_subscription,
    resolve_plan,
)
from billing_graphql.services.subscriptions.pricing import current_agents, recurring
from billing_graphql.services.subscriptions.results import announce_subscription
from billing_graphql.services.unit_of_work import MoneyMove, money_move

CONFIRM = "confirm_checkout"
MAX_GATEWAY_ID_LENGTH = 200

@dataclass(frozen=True, slots=True)
class CheckoutStart:
    """What the client SDK needs to open the gateway's checkout: the order the gateway made for the
    checkout's first invoice (its amount and currency checked against what is due)."""

    order: Order
    invoice: Invoice
    checkout: CheckoutSession

    @property
    def gateway(self) -> str:
        return self.checkout.gateway

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def key_id(self) -> str | None:
        return self.order.key_id

    @property
    def amount(self) -> int:
        return self.order.amount

    @property
    def currency(self) -> str:
        return self.order.currency


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    subscription: Subscription
    invoice: Invoice
    payment: Payment
    replayed: bool = False

    def response(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription.id, "invoice_id": self.invoice.id, "payment_id": self.payment.id}


# ---- start ----------------------------------------------------------------------------------

async def start_checkout(
    db: Database,
    actor: Actor | None,
    *,
    organization_id: uuid.UUID,
    choice: PlanChoice,
    gateway: str | None,
    gateways: GatewayRegistry,
    now: datetime,
) -> CheckoutStart:
    """Price the first period, write its OPEN invoice and the checkout row, create the order."""
    name = (gateway or "").strip().lower() or gateways.checkout_default
    if name not in GATEWAY_NAMES:
        raise validation(f"Unknown gateway {gateway!r}; known: {', '.join(GATEWAY_NAMES)}.", "gateway")
    processor = gateways.require(name, "gateway", code=BillingErrorCode.VALIDATION)
    coupon_code = choice.coupon.upper() if choice.coupon else None
    billing_period = choice.billing_period
    request = choice.request(coupon_code=coupon_code, gateway=name)
    with one_live_subscription():
        async with money_move(db, organization_id, "start_checkout", None, request, actor=actor, now=now,
                              gateways=gateways) as uow:
            session, organization = uow.session, uow.organization
            if await live_subscription(session, organization_id) is not None:
                raise already_subscribed()
            plan = await resolve_plan(session, choice.plan_id, currency=organization.currency)
            coupon = await check_coupon(session, coupon_code, plan, now=now) if coupon_code else None
            agents = await current_agents(session, organization_id, fallback=1)
            await _expire_open_checkouts(uow)
            first = period_at(now, billing_period, 0)
            lines = period_lines(recurring(plan, billing_period, agents, []), first.start, first.end)
            draft = draft_invoice(organization, plan.currency, lines,
                                  discount=coupon_discount(coupon) if coupon else None,
                                  tax_rule=await tax_rule_for(session, plan.currency, now))
            if draft.amount_due <= 0:
                raise validation("Nothing is due for this plan, so there is nothing to pay at checkout; "
                                 "subscribe instead.", "planId")
            invoice = await create_invoice(session, organization, draft, subscription_id=None,
                                           billing_reason=BillingReason.SUBSCRIPTION_CREATE,
                                           period_start=first.start, period_end=first.end, now=now)
            await finalize_invoice(session, invoice, now)
            checkout = CheckoutSession(
                id=uuid.uuid4(), organization_id=organization_id, invoice_id=invoice.id, plan_id=plan.id,
                billing_period=billing_period, coupon_code=coupon.code if coupon else None, agent_count=agents,
                gateway=name, status=CheckoutStatus.OPEN, created_at=now, updated_at=now,
            )
            session.add(checkout)
            await session.flush()
            due = amount_due(invoice)
            try:
                customer_id = await _gateway_customer(uow, processor)
                order = await processor.create_order(amount=due, currency=invoice.currency, receipt=invoice.number,
                                                     idempotency_key=f"checkout_{checkout.id}",
                                                     customer_id=customer_id, save_method=True)
            except GatewayError as exc:
                raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                                   f"The {name} gateway could not create the order: {exc}", field="gateway") from None
            if order.amount != due or order.currency != invoice.currency:
                raise BillingError(BillingErrorCode.PAYMENT_FAILED,
                                   f"The {name} gateway created an order for another amount.", field="gateway")
            invoice.gateway_order_id = order.order_id
            await session.flush()
            uow.emit("checkout.started", event_data("Invoice", invoice, ids={"plan_id": "Plan"},
                                                    order_id=order.order_id, gateway=name, plan_id=plan.id,
                                                    billing_period=billing_period))
            uow.audit("checkout.started", "Invoice", invoice.id,
                      after={"checkout_id": str(checkout.id), "order_id": order.order_id, "gateway": name,
                             "plan_id": str(plan.id), "billing_period": billing_period.value,
                             "coupon_code": checkout.coupon_code, "amount_due": due})
    return CheckoutStart(order=order, invoice=invoice, checkout=checkout)


async def _gateway_customer(uow: MoneyMove, processor: PaymentGateway) -> str:
    """The organization's customer at the gateway, created (and kept) on its first checkout."""
    organization = uow.organization
    if not organization.gateway_customer_id:
        organization.gateway_customer_id = await processor.create_customer(
            organization_id=str(organization.id), name=organization.name, email=organization.billing_email)
        organization.updated_at = uow.now
    return organization.gateway_customer_id


async def _expire_open_checkouts(uow: MoneyMove) -> None:
    """A newer checkout replaces an OPEN one: EXPIRED, its invoice VOID, its account credit returned."""
    session, organization, now = uow.session, uow.organization, uow.now
    stale = (await session.scalars(
        select(CheckoutSession).where(CheckoutSession.organization_id == organization.id,
                                      CheckoutSession.status == CheckoutStatus.OPEN)
        .execution_options(populate_existing=True)
    )).all()
    for checkout in stale:
        checkout.status = CheckoutStatus.EXPIRED
        checkout.updated_at = now
        invoice = await session.scalar(
            select(Invoice).where(Invoice.id == checkout.invoice_id).execution_options(populate_existing=True)
        )
        if invoice.status is InvoiceStatus.OPEN and invoice.amount_paid == 0:
            invoice.status = InvoiceStatus.VOID
            invoice.voided_at = now
            invoice.updated_at = now
            add_account_credit(organization, invoice.credit_applied, invoice.currency,
                               source=CreditSource.INVOICE_APPLIED, reason="given back: its invoice was voided",
                               invoice_id=invoice.id, now=now)
            uow.emit("invoice.voided", invoice_event_payload(invoice, reason="checkout replaced"))
            uow.audit("invoice.voided", "Invoice", invoice.id, reason="A newer checkout replaced this one.")
    if stale:
        await session.flush()  # before the new OPEN checkout meets the one-open index


# ---- confirm --------------------------------------------------------------------------------

def _clean_gateway_id(value: str | None, field: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > MAX_GATEWAY_ID_LENGTH or not value.isprintable():
        raise validation(f"{field} is 1 to {MAX_GATEWAY_ID_LENGTH} printable characters.", field)
    return value


async def _result_of(session: AsyncSession, checkout: CheckoutSession, replayed: bool) -> CheckoutResult:
    return CheckoutResult(
        subscription=await session.get(Subscription, checkout.subscription_id),
        invoice=await session.get(Invoice, checkout.invoice_id),
        payment=await session.get(Payment, checkout.payment_id),
        replayed=replayed,
    )


async def confirm_checkout(
    db: Database,
    actor: Actor | None,
    *,
    organization_scope: uuid.UUID | None,
    order_id: str,
    payment_id: str,
    signature: str,
    idempotency_key: str | None,
    gateways: GatewayRegistry,
    now: datetime,
    verified_event: bool = False,
) -> CheckoutResult:
    """Verify the gateway's signature, then record the payment and start the subscription ACTIVE.

    ``organization_scope``: the tenant's organization (another one's order is NOT_FOUND), or
    None for super-admins.
    """
    idempotency.clean_key(idempotency_key)  # a bad key is refused before anything else
    order_id = _clean_gateway_id(order_id, "orderId")
    payment_id = _clean_gateway_id(payment_id, "paymentId")
    async with db.read() as session:
        statement = (select(CheckoutSession.id, CheckoutSession.organization_id, CheckoutSession.gateway)
                     .join(Invoice, Invoice.id == CheckoutSession.invoice_id)
                     .where(Invoice.gateway_order_id == order_id))
        if organization_scope is not None:
            statement = statement.where(CheckoutSession.organization_id == organization_scope)
        found = (await session.execute(statement)).first()
    if found is None:
        raise not_found("Checkout order", "orderId")
    checkout_id, organization_id, gateway_name = found
    processor = gateways.require(gateway_name, "orderId", code=BillingErrorCode.VALIDATION)
    # A processor's signed event (Stripe's payment_intent.succeeded) stands for the client's signature.
    if not verified_event and not processor.verify_payment_signature(order_id=order_id, payment_id=payment_id,
                                                                     signature=signature or ""):
        raise BillingError(BillingErrorCode.INVALID_SIGNATURE,
                           "The payment signature does not match this order and payment.", field="signature")

    saved, unsaved_reason = await _saved_method(processor, order_id, payment_id)
    request = {"order_id": order_id, "payment_id": payment_id}
    with one_live_subscription():
        async with money_move(db, organization_id, CONFIRM, idempotency_key, request, actor=actor, now=now,
                              gateways=gateways) as uow:
            session = uow.session
            if uow.replayed:
                return CheckoutResult(
                    subscription=await session.get(Subscription, uuid.UUID(uow.stored["subscription_id"])),
                    invoice=await session.get(Invoice, uuid.UUID(uow.stored["invoice_id"])),
                    payment=await session.get(Payment, uuid.UUID(uow.stored["payment_id"])),
                    replayed=True,
                )
            checkout = await session.scalar(
                select(CheckoutSession).where(CheckoutSession.id == checkout_id)
                .execution_options(populate_existing=True)
            )
            if checkout.status is CheckoutStatus.COMPLETED:
                if checkout.gateway_payment_id != payment_id:
                    raise validation("This order was already confirmed with another payment.", "paymentId")
                result = await _result_of(session, checkout, replayed=True)
            else:
                result = await _complete(uow, checkout, order_id, payment_id, saved, unsaved_reason)
            uow.done(result.response())
    return result


async def _saved_method(processor: PaymentGateway, order_id: str, payment_id: str) -> tuple[SavedMethod | None, str | None]:
    """What the gateway kept of the paying method (asked before the transaction), or why nothing."""
    try:
        saved = await processor.saved_method(order_id=order_id, payment_id=payment_id)
    except GatewayError as exc:
        return None, f"the gateway could not say which method paid: {exc}"
    return saved, None if saved is not None else "the gateway kept no reusable token for this payment"


async def _complete(uow: MoneyMove, checkout: CheckoutSession, order_id: str, gateway_payment_id: str,
                    saved: SavedMethod | None, unsaved_reason: str | None) -> CheckoutResult:
    session, organization, now = uow.session, uow.organization, uow.now
    if checkout.status is CheckoutStatus.EXPIRED:
        raise validation("This checkout was replaced by a newer one; pay the newer order.", "orderId")
    invoice = await session.scalar(
        select(Invoice).where(Invoice.id == checkout.invoice_id).execution_options(populate_existing=True)
    )
    if invoice.status is not InvoiceStatus.OPEN:
        raise validation(f"The checkout's invoice is {invoice.status.value}, not OPEN.", "orderId")
    if await live_subscription(session, organization.id) is not None:
        raise already_subscribed()
    plan = await session.get(Plan, checkout.plan_id)  # the quoted plan, even if retired since
    subscription = await new_subscription(
        session, organization_id=organization.id, plan=plan, billing_period=checkout.billing_period,
        agents=checkout.agent_count, trial=False, payment_gateway=checkout.gateway, now=now,
    )
    coupon_problem: str | None = None
    if checkout.coupon_code:
        try:
            await redeem_coupon(session, checkout.coupon_code, plan, organization_id=organization.id,
                                subscription=subscription, now=now)
        except BillingError as error:  # paid at the quoted price; later periods go undiscounted
            coupon_problem = error.message
        else:
            consume_coupon_period(subscription)

    method = None
    if saved is not None:
        method = await keep_checkout_method(session, uow.actor, organization_id=organization.id,
                                            gateway=checkout.gateway, saved=saved, now=now)
        unsaved_reason = None if method is not None else "the gateway's token was refused"
    due = amount_due(invoice)
    payment_row_id = idempotency.derived_id(organization.id, CONFIRM, order_id, "payment")
    payment = Payment(
        id=payment_row_id, organization_id=organization.id, invoice_id=invoice.id,
        payment_method_id=method.id if method else None,
        gateway=checkout.gateway, gateway_payment_id=gateway_payment_id, idempotency_key=payment_key(payment_row_id),
        amount=due, amount_refunded=0, currency=invoice.currency, status=PaymentStatus.SUCCEEDED,
        created_at=now, updated_at=now,
    )
    session.add(payment)
    # The first period starts now, when it is paid for, not when the checkout was opened.
    invoice.subscription_id = subscription.id
    invoice.period_start = subscription.current_period_start
    invoice.period_end = subscription.current_period_end
    await session.execute(
        update(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id, InvoiceLine.period_start.is_not(None))
        .values(period_start=subscription.current_period_start, period_end=subscription.current_period_end)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    mark_paid(session, invoice, due, now)
    checkout.status = CheckoutStatus.COMPLETED
    checkout.gateway_payment_id = gateway_payment_id
    checkout.payment_id = payment.id
    checkout.subscription_id = subscription.id
    checkout.completed_at = now
    checkout.updated_at = now
    announce_subscription(session, uow.actor, subscription, action="subscription.created",
                          event="subscription.created", now=now, reason=f"checkout {order_id}")
    uow.emit("checkout.completed", event_data("Invoice", invoice, ids={"payment_id": "Payment"}, order_id=order_id,
                                              gateway_payment_id=gateway_payment_id, payment_id=payment.id))
    uow.audit("checkout.confirmed", "Invoice", invoice.id,
              after={"order_id": order_id, "gateway_payment_id": gateway_payment_id, "payment_id": str(payment.id),
                     "subscription_id": str(subscription.id), "coupon_code": checkout.coupon_code,
                     "coupon_redeemed": bool(checkout.coupon_code) and coupon_problem is None,
                     "payment_method_id": str(method.id) if method else None},
              reason="; ".join(problem for problem in (
                  f"coupon not redeemed: {coupon_problem}" if coupon_problem else None,
                  f"payment method not saved: {unsaved_reason}" if unsaved_reason else None) if problem) or None)
    await session.flush()
    return CheckoutResult(subscription=subscription, invoice=invoice, payment=payment)
