"""Subscription lifecycle: subscribe, cancel, resume, the super-admin patch, and reads.

Plan and add-on changes are in ``plan_changes``; shared pieces in ``loading``, ``pricing``,
``coupons`` and ``results`` beside it. Every write takes the organization's lock first and writes
its outbox events and audit rows in the same transaction.
"""

from __future__ import annotations

from typing import Any

import uuid
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import BillingReason, CreditNote, Payment, PaymentMethod, PaymentStatus, Plan, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.invoices import period_lines
from billing_graphql.domain.status import SubscriptionStatus, transition
from billing_graphql.gateways import GATEWAY_NAMES, GatewayRegistry
from billing_graphql.services.billing.charging import bill_subscription, payment_error, payment_method_for
from billing_graphql.services.billing.credit_notes import drive_credit_note_refunds
from billing_graphql.services.billing.invoicing import draft_invoice, tax_rule_for
from billing_graphql.services.subscriptions.cancellation import credit_unused_period
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.coupons import (
    consume_coupon_period,
    coupon_in_effect,
    discount_of,
    redeem_coupon,
)
from billing_graphql.services.subscriptions.loading import (
    already_subscribed,
    live_subscription,
    new_subscription,
    one_live_subscription,
    require_live_subscription,
    resolve_plan,
)
from billing_graphql.services.subscriptions.pricing import current_agents, recurring
from billing_graphql.services.subscriptions.results import (
    SubscriptionChange,
    announce_subscription,
    result_from_response,
    subscription_snapshot,
)
from billing_graphql.services.unit_of_work import KeptFailure, MoneyMove, locked_organization, money_move
from billing_graphql.services.subscriptions.trials import record_trial, trial_available

MAX_REASON_LENGTH = 2000


async def subscribe(
    db: Database,
    actor: Actor | None,
    *,
    organization_id: uuid.UUID,
    choice: PlanChoice,
    payment_method_id: uuid.UUID | None,
    idempotency_key: str | None,
    gateways: GatewayRegistry,
    now: datetime,
    trial_once: bool = True,
) -> SubscriptionChange:
    """Start the organization's subscription.

    TRIALING for the plan's trial days (the trial is the first period; paid periods are anchored
    on its end), once per organization and plan (``services.subscriptions.trials``). A plan
    without trial days, or whose trial the organization has had, starts ACTIVE: the first period's invoice is finalized
    and charged to ``payment_method_id`` or the default method (PAYMENT_REQUIRED without one when
    something is due, and nothing is written). A declined first charge creates nothing:
    PAYMENT_FAILED, no subscription, invoice, payment, coupon redemption or event; the attempt is
    kept in the audit log and the error under the idempotency key (the unit of work's kept
    failure), so the same key replays it and a new key tries again. A processor fault (the
    outcome unknown) keeps the subscription with its payment PENDING, to be reconciled.
    """
    coupon_code, billing_period = choice.coupon, choice.billing_period
    request = choice.request(payment_method_id=payment_method_id)
    with one_live_subscription():
        async with money_move(db, organization_id, "subscribe", idempotency_key, request,
                              actor=actor, now=now, gateways=gateways) as uow:
            session = uow.session
            if uow.replayed:
                return await result_from_response(session, uow.stored)
            if await live_subscription(session, organization_id) is not None:
                raise already_subscribed()
            plan = await resolve_plan(session, choice.plan_id, currency=uow.organization.currency)
            method = await payment_method_for(session, organization_id, payment_method_id)
            agents = await current_agents(session, organization_id, fallback=1)
            trial = await trial_available(session, organization_id, plan, trial_once=trial_once)
            if trial:
                await record_trial(session, organization_id, plan.id, now)
            subscription = await new_subscription(
                session, organization_id=organization_id, plan=plan, billing_period=billing_period, agents=agents,
                trial=trial, payment_gateway=method.gateway if method else "sandbox", now=now,
            )
            coupon = await redeem_coupon(session, coupon_code, plan, organization_id=organization_id,
                                         subscription=subscription, now=now) if coupon_code else None
            result = SubscriptionChange(subscription=subscription)
            if not trial:
                start, end = subscription.current_period_start, subscription.current_period_end
                lines = period_lines(recurring(plan, billing_period, agents, []), start, end)
                draft = draft_invoice(uow.organization, plan.currency, lines,
                                      discount=discount_of(coupon, subscription, proration=False),
                                      tax_rule=await tax_rule_for(session, plan.currency, now))
                if coupon is not None:
                    consume_coupon_period(subscription)
                result.invoice, result.payment = await bill_subscription(
                    uow, subscription, draft, billing_reason=BillingReason.SUBSCRIPTION_CREATE,
                    period_start=start, period_end=end, payment_method=method,
                )
                if result.payment is not None and result.payment.status is PaymentStatus.FAILED:
                    raise _declined_first_payment(uow, plan, method, result.payment)
            announce_subscription(session, actor, subscription, action="subscription.created",
                                  event="subscription.created", now=now)
            uow.done(result.response())
    return result


def _declined_first_payment(uow: MoneyMove, plan: Plan, method: PaymentMethod | None,
                            payment: Payment) -> KeptFailure:
    """The kept failure of a declined first charge: its audit row says what was tried."""
    return uow.kept_failure(
        payment_error(payment), action="subscription.payment_failed", object_type="Plan", object_id=plan.id,
        after={"plan_id": plan.id, "payment_method_id": method.id if method else None, "amount": payment.amount,
               "currency": payment.currency, "gateway": payment.gateway,
               "gateway_payment_id": payment.gateway_payment_id, "failure_code": payment.failure_code,
               "failure_message": payment.failure_message},
        reason="The first payment was declined; no subscription was created.",
    )


async def cancel(
    db: Database,
    actor: Actor | None,
    *,
    organization_id: uuid.UUID,
    immediately: bool,
    reason: str | None,
    now: datetime,
    prorate: bool = False,
    refund: bool = False,
    idempotency_key: str | None = None,
    gateways: GatewayRegistry | None = None,
) -> SubscriptionChange:
    """Cancel at the period's end (status unchanged until then) or, ``immediately``, now.

    Canceling now ends the subscription and its dunning: its OPEN invoices are no longer retried
    by the billing run (staff void them or collect them with ``payInvoice``). Without ``prorate``
    nothing is credited for the unused part of the period (as Stripe); with it, credit notes on the
    period's invoices credit it (``cancellation.credit_unused_period``: to the account balance, or
    refunded with ``refund``, or off what an unpaid one still asks). ``prorate`` and ``refund`` go
    with ``immediately`` only, and ``refund`` with ``prorate`` (super-admins only). A second
    cancel at period end changes nothing. Idempotent with ``idempotency_key``.
    """
    reason = _clean_reason(reason)
    if (prorate or refund) and not immediately:
        raise validation("prorate and refund go with immediately: true (a cancellation at the period's end "
                         "uses the whole period).", "prorate" if prorate else "refund")
    if refund and not prorate:
        raise validation("refund: true refunds the prorated unused part: pass prorate: true as well.", "refund")
    if refund and not (actor is not None and actor.is_super_admin):
        raise validation("Only staff refund a cancellation; without refund the unused part goes to the account "
                         "balance.", "refund")
    request = {"immediately": immediately, "prorate": prorate, "refund": refund, "reason": reason}
    async with money_move(db, organization_id, "cancel", idempotency_key, request, actor=actor, now=now,
                          gateways=gateways) as uow:
        session = uow.session
        if uow.replayed:
            result = await result_from_response(session, uow.stored)
            result.extra["credit_notes"] = [await session.get(CreditNote, uuid.UUID(value))
                                            for value in uow.stored.get("credit_note_ids") or []]
            result.extra["refund_ids"] = [uuid.UUID(value) for value in uow.stored.get("refund_ids") or []]
            return await _with_credit_notes(db, result, gateways, now)
        subscription = await require_live_subscription(session, organization_id)
        before = subscription_snapshot(subscription)
        result = SubscriptionChange(subscription=subscription)
        if prorate:  # before the status moves: a credit that settles an open invoice ends its dunning first
            issued = await credit_unused_period(uow, subscription, refund=refund)
            result.extra["credit_notes"] = [item.credit_note for item in issued]
            result.extra["refund_ids"] = [refund_id for item in issued for refund_id in item.refund_ids]
        if immediately:
            subscription.status = transition(subscription.status, SubscriptionStatus.CANCELED)
            _ended_now(subscription, reason, now)
            subscription.pending_plan_id = subscription.pending_billing_period = None
            event = "subscription.canceled"
        elif subscription.cancel_at_period_end:
            uow.done(result.response())
            return result
        else:
            subscription.cancel_at_period_end = True
            subscription.canceled_at = now
            subscription.cancel_reason = reason
            event = "subscription.updated"
        subscription.updated_at = now
        announce_subscription(session, actor, subscription, event=event, now=now, before=before, reason=reason,
                              action="subscription.canceled" if immediately else "subscription.cancel_scheduled")
        uow.done({**result.response(), "credit_note_ids": [note.id for note in result.extra.get("credit_notes", [])],
                  "refund_ids": result.extra.get("refund_ids", [])})
    return await _with_credit_notes(db, result, gateways, now)


async def _with_credit_notes(db: Database, result: SubscriptionChange, gateways: GatewayRegistry | None,
                             now: datetime) -> SubscriptionChange:
    """After the commit: the refunds of REFUND credit notes driven through the processor, and the
    notes as they are now (a refused refund voids its note)."""
    notes = result.extra.get("credit_notes") or []
    if not notes:
        return result
    if result.extra.get("refund_ids") and gateways is not None:
        await drive_credit_note_refunds(db, result.extra["refund_ids"], gateways, now)
    async with db.read() as session:
        result.extra["credit_notes"] = [await session.get(CreditNote, note.id) for note in notes]
    return result


async def resume(db: Database, actor: Actor | None, *, organization_id: uuid.UUID, now: datetime) -> SubscriptionChange:
    """Clear a pending cancellation while the period lasts (NOT_PENDING_CANCELLATION otherwise)."""
    async with db.write() as session:
        await locked_organization(session, organization_id)
        subscription = await require_live_subscription(session, organization_id)
        if not subscription.cancel_at_period_end:
            raise BillingError(BillingErrorCode.NOT_PENDING_CANCELLATION,
                               "The subscription is not set to cancel; there is nothing to resume.")
        if now >= subscription.current_period_end:
            raise BillingError(BillingErrorCode.SUBSCRIPTION_CANCELED,
                               "The period the cancellation waited for has ended.")
        before = subscription_snapshot(subscription)
        subscription.cancel_at_period_end = False
        subscription.canceled_at = None
        subscription.cancel_reason = None
        subscription.updated_at = now
        announce_subscription(session, actor, subscription, action="subscription.resumed",
                              event="subscription.updated", now=now, before=before)
    return SubscriptionChange(subscription=subscription)


async def apply_coupon(db: Database, actor: Actor | None, *, organization_id: uuid.UUID, coupon_code: str,
                       now: datetime) -> SubscriptionChange:
    """``applyCoupon``: redeem a coupon on the live subscription; it takes effect from the next
    invoice of a period (as ``subscribe``'s coupon does from the first). COUPON_* errors as at
    subscribe; COUPON_NOT_APPLICABLE while another coupon is still in effect."""
    if not (coupon_code or "").strip():
        raise validation("Type a coupon code.", "couponCode")
    async with db.write() as session:
        await locked_organization(session, organization_id)
        subscription = await require_live_subscription(session, organization_id)
        if coupon_in_effect(subscription):
            raise BillingError(BillingErrorCode.COUPON_NOT_APPLICABLE,
                               "A coupon is already applied to this subscription.", field="couponCode")
        before = subscription_snapshot(subscription)
        plan = await session.get(Plan, subscription.plan_id)
        await redeem_coupon(session, coupon_code, plan, organization_id=organization_id, subscription=subscription,
                            now=now)
        subscription.updated_at = now
        announce_subscription(session, actor, subscription, action="subscription.coupon_applied",
                              event="subscription.updated", now=now, before=before)
    return SubscriptionChange(subscription=subscription)


_UNSET = object()


async def update_subscription(
    db: Database,
    actor: Actor,
    *,
    subscription_id: uuid.UUID,
    status: SubscriptionStatus | None = None,
    reason: str | None = None,
    current_period_end: datetime | None = None,
    payment_gateway: str | None = None,
    gateway_customer_id: object = _UNSET,
    gateway_subscription_id: object = _UNSET,
    gateways: GatewayRegistry | None = None,
    now: datetime,
) -> SubscriptionChange:
    """The super-admin patch: a status override (with a reason, through ``transition``), a later
    period end (re-anchoring the following periods on it; a trial's end moves with it), gateway
    ids. A payment gateway must be one this deployment has configured (``gateways``; Razorpay needs
    its keys): VALIDATION on ``paymentGateway`` otherwise. Audited with before and after; no change
    writes nothing."""
    reason = _clean_reason(reason)
    if status is not None and not reason:
        raise validation("A status override needs a reason.", "reason")
    if payment_gateway is not None and payment_gateway not in GATEWAY_NAMES:
        raise validation(f"Unknown gateway {payment_gateway!r}; known: {', '.join(GATEWAY_NAMES)}.", "paymentGateway")
    if payment_gateway is not None and gateways is not None:
        gateways.require(payment_gateway, "paymentGateway", code=BillingErrorCode.VALIDATION)
    for name, value in (("gatewayCustomerId", gateway_customer_id), ("gatewaySubscriptionId", gateway_subscription_id)):
        if value is not _UNSET and value is not None and (not isinstance(value, str) or len(value) > 200):
            raise validation("A gateway id is at most 200 characters.", name)
    async with db.read() as session:
        organization_id = await session.scalar(select(Subscription.organization_id).where(Subscription.id == subscription_id))
    if organization_id is None:
        raise not_found("Subscription")
    async with db.write() as session:
        await locked_organization(session, organization_id)
        subscription = await session.get(Subscription, subscription_id)
        before = subscription_snapshot(subscription)
        if status is not None:
            subscription.status = transition(subscription.status, status)
            if status is SubscriptionStatus.CANCELED:
                _ended_now(subscription, reason, now)
        elif subscription.status is SubscriptionStatus.CANCELED:
            raise BillingError(BillingErrorCode.SUBSCRIPTION_CANCELED, "The subscription is canceled.")
        if current_period_end is not None:
            if current_period_end <= subscription.current_period_end:
                raise validation("The period end can only be moved later.", "currentPeriodEnd")
            subscription.current_period_end = current_period_end
            # The following periods are anchored on the new end (the billing run renews from it).
            subscription.period_anchor = current_period_end
            if subscription.status is SubscriptionStatus.TRIALING:
                subscription.trial_ends_at = current_period_end
        if payment_gateway is not None:
            subscription.payment_gateway = payment_gateway
        if gateway_customer_id is not _UNSET:
            subscription.gateway_customer_id = gateway_customer_id or None
        if gateway_subscription_id is not _UNSET:
            subscription.gateway_subscription_id = gateway_subscription_id or None
        if subscription_snapshot(subscription) == before:
            return SubscriptionChange(subscription=subscription)
        subscription.updated_at = now
        event = "subscription.canceled" if status is SubscriptionStatus.CANCELED else "subscription.updated"
        announce_subscription(session, actor, subscription, action="subscription.admin_updated", event=event,
                              now=now, before=before, reason=reason)
    return SubscriptionChange(subscription=subscription)


def _ended_now(subscription: Subscription, reason: str | None, now: datetime) -> None:
    """What a cancellation taking effect now stamps (a customer's ``cancel`` or a super-admin's
    status override): canceled and ended now, with its reason, nothing left pending at period end,
    no dunning retry left (its OPEN invoices are no longer retried)."""
    subscription.canceled_at = subscription.ended_at = now
    subscription.cancel_at_period_end = False
    subscription.cancel_reason = reason
    subscription.next_retry_at = None


def _clean_reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise validation(f"A reason is at most {MAX_REASON_LENGTH} characters.", "reason")
    return reason


# ---- reads ----------------------------------------------------------------------------------

async def get_live_subscription(db: Database, organization_id: uuid.UUID) -> Subscription | None:
    async with db.read() as session:
        return await live_subscription(session, organization_id)


def subscriptions_statement(status: SubscriptionStatus | None, plan_id: uuid.UUID | None) -> Any:
    """Every subscription, newest first (of one status, of one plan, when given)."""
    statement = select(Subscription).order_by(Subscription.created_at.desc(), Subscription.id)
    if status is not None:
        statement = statement.where(Subscription.status == status)
    if plan_id is not None:
        statement = statement.where(Subscription.plan_id == plan_id)
    return statement

