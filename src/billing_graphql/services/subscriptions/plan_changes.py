"""Plan and add-on changes with proration (DESIGN.md section 3).

An immediate change of an ACTIVE (or PAST_DUE/UNPAID) subscription credits the unused part of the
old recurring price and charges the new one for the rest of the period, to the second
(``domain.proration``). A change of billing period starts a new period now: the new price is
charged for the whole of it and the subscription is re-anchored. A PERCENTAGE coupon still in
effect takes its share off the net before tax. Then:

- a positive net becomes an invoice (credit line, charge line, tax), finalized and charged to
  the default payment method (PAYMENT_REQUIRED without one; nothing is written);
- a negative net becomes account credit, with the tax a charge of its size would have taken;
  no invoice is written for it;
- during a trial the plan changes with no invoice at all.

``effective=PERIOD_END`` schedules the change instead (``pending_plan_id``/
``pending_billing_period``; the billing run applies it at renewal); a later call replaces the
schedule, and scheduling the current plan and period clears it. ``dry_run`` runs the same
checks and pricing in a read-only session and returns the preview, writing nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    BillingReason,
    Coupon,
    Organization,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.domain.invoices import InvoiceDraft, price, proration_lines
from billing_graphql.domain.money import Money, major_to_minor_exact
from billing_graphql.domain.periods import BillingPeriod, Period, add_months
from billing_graphql.domain.proration import Effective, cap_too_low, prorate
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.webhooks.objects import money
from billing_graphql.services.billing.charging import bill_subscription, payment_method_for, require_payment_method
from billing_graphql.services.billing.credit import add_account_credit
from billing_graphql.services.billing.invoicing import draft_invoice, tax_rule_for
from billing_graphql.services.subscriptions.coupons import discount_of
from billing_graphql.services.subscriptions.loading import require_live_subscription, resolve_plan
from billing_graphql.services.subscriptions.pricing import addon_price, attached_addons, current_agents, recurring
from billing_graphql.services.subscriptions.results import (
    InvoicePreview,
    SubscriptionChange,
    announce_subscription,
    result_from_response,
    subscription_snapshot,
)
from billing_graphql.services.unit_of_work import MoneyMove, money_move
from billing_graphql.services.subscriptions.trials import record_trial


def _period_label(billing_period: BillingPeriod) -> str:
    return "monthly" if billing_period is BillingPeriod.MONTHLY else "annual"


class _Proration:
    """Prices one prorated change of a subscription and, unless it is a dry run, books it."""

    def __init__(self, session: AsyncSession, organization: Organization, subscription: Subscription,
                 currency: str, now: datetime) -> None:
        self.session = session
        self.organization = organization
        self.subscription = subscription
        self.currency = currency
        self.now = now

    async def price(
        self, *, old_total: int, new_total: int, old_description: str, new_description: str,
        restart_period: bool, new_period_end: datetime, coupon: Coupon | None,
    ):
        subscription = self.subscription
        period = Period(subscription.current_period_start, subscription.current_period_end)
        proration = prorate(old_total, new_total, period, self.now, restart_period=restart_period)
        lines = proration_lines(proration, old_description=old_description, new_description=new_description,
                                at=self.now, period_end=period.end, new_period_end=new_period_end)
        discount = discount_of(coupon, subscription, proration=True)
        rule = await tax_rule_for(self.session, self.currency, self.now)
        totals = price(self.currency, lines, discount=discount, tax_rule=rule)
        if totals.total < 0:
            return lines, None, InvoicePreview.of_credit(lines, totals)
        if totals.total == 0:
            return lines, None, InvoicePreview.of_credit(lines, totals) if lines else None
        draft = draft_invoice(self.organization, self.currency, lines, discount=discount, tax_rule=rule)
        return lines, draft, InvoicePreview.of_invoice(draft)


async def _load_coupon(session: AsyncSession, subscription: Subscription) -> Coupon | None:
    return await session.get(Coupon, subscription.coupon_id) if subscription.coupon_id else None


def _spending_cap_minor(spending_cap: Decimal | None, currency: str) -> int | None:
    if spending_cap is None:
        return None
    if spending_cap < 0:
        raise validation("A spending cap is never negative.", "spendingCap")
    return major_to_minor_exact(spending_cap, currency, "spendingCap")


def spending_cap_too_low(minimum: int, currency: str) -> BillingError:
    return BillingError(
        BillingErrorCode.SPENDING_CAP_TOO_LOW,
        f"The spending cap must cover the current seats: at least {Money(minimum, currency).format()} per period.",
        field="spendingCap",
        minimum_required_cap=minimum,
        currency=currency,
    )


async def change_plan(
    db: Database,
    actor: Actor | None,
    *,
    organization_id: uuid.UUID,
    plan_id: uuid.UUID | None,
    billing_period: BillingPeriod | None,
    effective: Effective = Effective.IMMEDIATE,
    spending_cap: Decimal | None = None,
    dry_run: bool = False,
    idempotency_key: str | None = None,
    gateways: GatewayRegistry,
    now: datetime,
) -> SubscriptionChange:
    request = {"plan_id": plan_id, "billing_period": billing_period, "effective": effective,
               # "150000" and "150000.00" are the same request
               "spending_cap": spending_cap.normalize() if spending_cap is not None else None}
    async with money_move(db, organization_id, "change_plan", idempotency_key, request, actor=actor, now=now,
                          gateways=gateways, dry_run=dry_run) as uow:
        session, organization = uow.session, uow.organization
        if uow.replayed:
            return await result_from_response(session, uow.stored)
        subscription = await require_live_subscription(session, organization_id)
        current_plan = await session.get(Plan, subscription.plan_id)
        target_plan = current_plan if plan_id is None else await resolve_plan(session, plan_id)
        if target_plan.currency != current_plan.currency:
            raise BillingError(
                BillingErrorCode.PLAN_NOT_AVAILABLE,
                f"The {target_plan.name} plan is billed in {target_plan.currency}; this subscription is in "
                f"{current_plan.currency}. Cancel and subscribe again to change currency.",
                field="planId",
            )
        target_period = billing_period or subscription.billing_period
        currency = current_plan.currency
        cap = _spending_cap_minor(spending_cap, currency)
        agents = await current_agents(session, organization_id, fallback=subscription.agent_count)
        addons = await attached_addons(session, subscription.id)
        new_recurring = recurring(target_plan, target_period, agents, addons)
        if cap_too_low(cap, new_recurring.seats_amount):
            raise spending_cap_too_low(new_recurring.seats_amount, currency)
        plan_changes = (target_plan.id, target_period) != (subscription.plan_id, subscription.billing_period)
        cap_changes = cap is not None and cap != subscription.spending_cap
        scheduled = subscription.pending_plan_id is not None or subscription.pending_billing_period is not None
        if effective is Effective.PERIOD_END:
            already = (subscription.pending_plan_id, subscription.pending_billing_period) == (
                target_plan.id, target_period)
            if not cap_changes and ((not plan_changes and not scheduled) or (plan_changes and already)):
                raise _same_plan(scheduled=already)
        elif not plan_changes and not cap_changes:
            raise _same_plan(scheduled=False)

        result = SubscriptionChange(subscription=subscription)
        immediate = effective is Effective.IMMEDIATE and plan_changes
        trialing = subscription.status is SubscriptionStatus.TRIALING
        restart = target_period != subscription.billing_period
        new_period_end = add_months(now, target_period.months) if restart else subscription.current_period_end
        draft = None
        method = None
        if immediate and not trialing:
            old_recurring = recurring(current_plan, subscription.billing_period, subscription.agent_count, addons)
            pricing = _Proration(session, organization, subscription, currency, now)
            _, draft, result.preview = await pricing.price(
                old_total=old_recurring.total, new_total=new_recurring.total,
                old_description=f"{current_plan.name} ({_period_label(subscription.billing_period)})",
                new_description=f"{target_plan.name} ({_period_label(target_period)})",
                restart_period=restart, new_period_end=new_period_end,
                coupon=await _load_coupon(session, subscription),
            )
            if draft is not None and not dry_run:
                method = await payment_method_for(session, organization_id, None)
                require_payment_method(draft, method)
        elif immediate:
            ends = subscription.trial_ends_at or subscription.current_period_end
            result.preview = InvoicePreview.nothing_due(
                currency, f"No invoice is due until the trial ends on {ends:%Y-%m-%d %H:%M} UTC; the first "
                          f"invoice then bills the {target_plan.name} plan.")
        if dry_run:
            return result

        before = subscription_snapshot(subscription)
        if cap is not None:
            subscription.spending_cap = cap
        if effective is Effective.PERIOD_END:
            if plan_changes:
                subscription.pending_plan_id, subscription.pending_billing_period = target_plan.id, target_period
            else:
                subscription.pending_plan_id = subscription.pending_billing_period = None
        elif plan_changes:
            subscription.plan_id = target_plan.id
            subscription.billing_period = target_period
            subscription.pending_plan_id = subscription.pending_billing_period = None
            if trialing:
                await record_trial(session, organization_id, target_plan.id, now)
            else:
                subscription.agent_count = agents
                if restart:
                    subscription.period_anchor = now
                    subscription.current_period_start = now
                    subscription.current_period_end = new_period_end
                await _book(uow, subscription, result, draft, method, period_end=new_period_end, currency=currency)
        subscription.updated_at = now
        _announce(uow, subscription, before, result, action="subscription.plan_changed"
                  if effective is Effective.IMMEDIATE else "subscription.change_scheduled")
        uow.done(result.response())
    return result


def _same_plan(*, scheduled: bool) -> BillingError:
    if scheduled:
        return BillingError(BillingErrorCode.SAME_PLAN, "That change is already scheduled for the period's end.",
                            field="planId")
    return BillingError(BillingErrorCode.SAME_PLAN, "The subscription is already on that plan and period.",
                        field="planId")


async def _book(uow: MoneyMove, subscription: Subscription, result: SubscriptionChange, draft: InvoiceDraft | None,
                method: PaymentMethod | None, *, period_end: datetime, currency: str) -> None:
    """Book a priced change: bill a positive net (a prorated invoice), or add a credit."""
    if draft is not None:
        result.invoice, result.payment = await bill_subscription(
            uow, subscription, draft, billing_reason=BillingReason.SUBSCRIPTION_UPDATE,
            period_start=uow.now, period_end=period_end, payment_method=method,
        )
    elif result.preview is not None and result.preview.credit_added:
        result.credit_added = result.preview.credit_added
        add_account_credit(uow.organization, result.credit_added, currency)
        uow.organization.updated_at = uow.now


def _announce(uow: MoneyMove, subscription: Subscription, before: dict, result: SubscriptionChange, *,
              action: str) -> None:
    currency = result.preview.currency if result.preview else None
    extra = {"invoice_id": result.invoice.id if result.invoice else None,
             "credit_added": money(result.credit_added, currency) if result.credit_added else None}
    announce_subscription(uow.session, uow.actor, subscription, action=action, event="subscription.updated",
                          now=uow.now, before=before, extra=extra)


# ---- add-ons --------------------------------------------------------------------------------

async def _addon(session: AsyncSession, addon_id: uuid.UUID, currency: str, *, for_attach: bool) -> Addon:
    addon = await session.get(Addon, addon_id)
    if addon is None or (for_attach and not addon.is_active):
        raise BillingError(BillingErrorCode.ADDON_NOT_FOUND, "Add-on not found.", field="addonId")
    if for_attach and addon.currency != currency:
        raise validation(f"The {addon.name} add-on is priced in {addon.currency}; the subscription is in {currency}.",
                         "addonId")
    return addon


async def attach_addon(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, addon_id: uuid.UUID, quantity: int = 1,
    idempotency_key: str | None = None, gateways: GatewayRegistry, now: datetime,
) -> SubscriptionChange:
    """Attach an add-on, or set the quantity of an attached one; prorated like a plan change."""
    if quantity < 1 or quantity > 10_000:
        raise validation("Quantity is 1 to 10000.", "quantity")
    return await _change_addon(db, actor, organization_id=organization_id, addon_id=addon_id, quantity=quantity,
                               idempotency_key=idempotency_key, gateways=gateways, now=now)


async def detach_addon(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, addon_id: uuid.UUID,
    idempotency_key: str | None = None, gateways: GatewayRegistry, now: datetime,
) -> SubscriptionChange:
    """Detach an add-on; the unused part of its price becomes account credit."""
    return await _change_addon(db, actor, organization_id=organization_id, addon_id=addon_id, quantity=0,
                               idempotency_key=idempotency_key, gateways=gateways, now=now)


async def _change_addon(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, addon_id: uuid.UUID, quantity: int,
    idempotency_key: str | None, gateways: GatewayRegistry, now: datetime,
) -> SubscriptionChange:
    operation = "attach_addon" if quantity else "detach_addon"
    request = {"addon_id": addon_id, "quantity": quantity}
    async with money_move(db, organization_id, operation, idempotency_key, request, actor=actor, now=now,
                          gateways=gateways) as uow:
        session, organization = uow.session, uow.organization
        if uow.replayed:
            return await result_from_response(session, uow.stored)
        subscription = await require_live_subscription(session, organization_id)
        plan = await session.get(Plan, subscription.plan_id)
        addon = await _addon(session, addon_id, plan.currency, for_attach=bool(quantity))
        attached = await session.scalar(
            select(SubscriptionAddon).where(SubscriptionAddon.subscription_id == subscription.id,
                                            SubscriptionAddon.addon_id == addon_id)
        )
        if not quantity and attached is None:
            raise BillingError(BillingErrorCode.ADDON_NOT_FOUND, "That add-on is not attached.", field="addonId")
        result = SubscriptionChange(subscription=subscription)
        old_quantity = attached.quantity if attached else 0
        if quantity == old_quantity:
            return result  # attached already with that quantity: nothing to change
        before = subscription_snapshot(subscription)
        before["addons"] = {str(addon.id): old_quantity}
        if subscription.status is not SubscriptionStatus.TRIALING:
            # Both sides at the billed agent count: seat changes are billed on a plan change or at
            # renewal, so a later detach credits exactly what this charged.
            period, agents = subscription.billing_period, subscription.agent_count
            old_total = addon_price(addon, old_quantity).amount(period, agents) if old_quantity else 0
            new_total = addon_price(addon, quantity).amount(period, agents) if quantity else 0
            pricing = _Proration(session, organization, subscription, plan.currency, now)
            label = _period_label(period)
            _, draft, result.preview = await pricing.price(
                old_total=old_total, new_total=new_total,
                old_description=f"{addon.name} add-on x {old_quantity} ({label})",
                new_description=f"{addon.name} add-on x {quantity} ({label})",
                restart_period=False, new_period_end=subscription.current_period_end,
                coupon=await _load_coupon(session, subscription),
            )
            method = None
            if draft is not None:
                method = await payment_method_for(session, organization_id, None)
                require_payment_method(draft, method)
            await _book(uow, subscription, result, draft, method, period_end=subscription.current_period_end,
                        currency=plan.currency)
        if quantity and attached is None:
            session.add(SubscriptionAddon(subscription_id=subscription.id, addon_id=addon.id, quantity=quantity,
                                          created_at=now, updated_at=now))
        elif quantity:
            attached.quantity = quantity
            attached.updated_at = now
        else:
            await session.delete(attached)
        subscription.updated_at = now
        _announce(uow, subscription, before, result,
                  action="subscription.addon_attached" if quantity else "subscription.addon_detached")
        uow.done(result.response())
    return result
