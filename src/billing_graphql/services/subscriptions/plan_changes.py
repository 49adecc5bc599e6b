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

The decision (refusals, what to do, the money priced once) is ``domain.plan_change``; the
services here load what it reads, ask for the default payment method once, and apply it.
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
    InvoiceItem,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.domain.money import major_to_minor_exact
from billing_graphql.domain.periods import BillingPeriod, Period
from billing_graphql.domain.plan_change import (
    ChangeAction,
    ChangeBill,
    PlanChangeInput,
    PlanTerms,
    decide_plan_change,
    price_change,
    require_payment,
)
from billing_graphql.domain.proration import Effective, proration_instant
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.charging import bill_subscription, payment_method_for
from billing_graphql.domain.credit_balance import CreditSource
from billing_graphql.services.billing.credit import add_account_credit, available_credit
from billing_graphql.services.billing.invoice_items import bill_items, item_lines, pending_items
from billing_graphql.services.billing.invoicing import tax_rule_for
from billing_graphql.services.subscriptions.coupons import discount_of
from billing_graphql.services.subscriptions.loading import require_live_subscription, resolve_plan
from billing_graphql.services.webhooks.objects import money
from billing_graphql.services.billing.usage_charges import already_billed, priced_usage, usage_lines
from billing_graphql.services.subscriptions.pricing import (
    addon_price,
    attached_addons,
    current_agents,
    recurring,
    version_price,
)
from billing_graphql.services.subscriptions.results import (
    InvoicePreview,
    SubscriptionChange,
    announce_subscription,
    result_from_response,
    subscription_snapshot,
)
from billing_graphql.services.unit_of_work import MoneyMove, money_move
from billing_graphql.services.subscriptions.trials import record_trial


def preview_of(bill: ChangeBill | None) -> InvoicePreview | None:
    """How a priced change reads as a preview: its invoice, or its credit (None when it bills nothing)."""
    if bill is None:
        return None
    if bill.invoice is not None:
        return InvoicePreview.of_invoice(bill.invoice)
    return InvoicePreview.of_credit(list(bill.lines), bill.totals) if bill.lines else None


async def _load_coupon(session: AsyncSession, subscription: Subscription) -> Coupon | None:
    return await session.get(Coupon, subscription.coupon_id) if subscription.coupon_id else None


def _spending_cap_minor(spending_cap: Decimal | None, currency: str) -> int | None:
    if spending_cap is None:
        return None
    if spending_cap < 0:
        raise validation("A spending cap is never negative.", "spendingCap")
    return major_to_minor_exact(spending_cap, currency, "spendingCap")


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
    proration_date: datetime | None = None,
    gateways: GatewayRegistry,
    now: datetime,
) -> SubscriptionChange:
    """Load what ``domain.plan_change.decide_plan_change`` reads, then apply its decision.

    ``proration_date``: the instant of the preview this change confirms (``domain.proration.
    proration_instant``): the change is priced and takes effect at it, so it bills exactly what
    the preview showed as due now."""
    request = {"plan_id": plan_id, "billing_period": billing_period, "effective": effective,
               # "150000" and "150000.00" are the same request
               "spending_cap": spending_cap.normalize() if spending_cap is not None else None}
    if proration_date is not None:
        request["proration_date"] = proration_date
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
        # The prices of the versions: the one the subscription pays, and the target plan's current
        # one (the same plan on another billing period keeps its version).
        current_key = (current_plan.id, subscription.plan_version)
        target_key = current_key if target_plan.id == current_plan.id else (target_plan.id, target_plan.version)
        new_recurring = recurring(await version_price(session, target_plan, target_key[1]), target_period, agents,
                                  addons)
        old_recurring = recurring(await version_price(session, current_plan, current_key[1]),
                                  subscription.billing_period, subscription.agent_count, addons)
        period = Period(subscription.current_period_start, subscription.current_period_end)
        usage, used_lines = None, ()
        if (effective is Effective.IMMEDIATE and subscription.status is not SubscriptionStatus.TRIALING
                and (target_plan.id, target_period) != (current_plan.id, subscription.billing_period)):
            usage = await priced_usage(session, organization_id, [current_key, target_key], period,
                                       billed=already_billed(subscription.usage_billed, period))
            used_lines = tuple(usage_lines(usage.by_version[current_key], Period(period.start, now),
                                           seats_amount=old_recurring.seats_amount, cap=subscription.spending_cap,
                                           summed_only=True))
        method = await payment_method_for(session, organization_id, None)
        priced_at = proration_instant(proration_date, now=now, period=period)
        items = await pending_items(session, organization_id, currency)
        decision = decide_plan_change(PlanChangeInput(
            current=PlanTerms(current_plan.id, current_plan.name, subscription.billing_period, old_recurring.total),
            target=PlanTerms(target_plan.id, target_plan.name, target_period, new_recurring.total),
            effective=effective, trialing=subscription.status is SubscriptionStatus.TRIALING,
            period=period, now=priced_at, usage_lines=used_lines,
            currency=currency, pending=(subscription.pending_plan_id, subscription.pending_billing_period),
            cap=cap, current_cap=subscription.spending_cap, minimum_cap=new_recurring.seats_amount,
            discount=discount_of(await _load_coupon(session, subscription), subscription, proration=True),
            tax_rule=await tax_rule_for(session, currency, now),
            account_credit=available_credit(organization, currency), has_payment_method=method is not None,
            trial_ends=subscription.trial_ends_at, dry_run=dry_run, pending_lines=item_lines(items),
        ))
        result = SubscriptionChange(subscription=subscription, preview=preview_of(decision.bill))
        if decision.trial_message is not None:
            result.preview = InvoicePreview.nothing_due(currency, decision.trial_message)
        if dry_run:
            return result

        before = subscription_snapshot(subscription)
        if cap is not None:
            subscription.spending_cap = cap
        if decision.action is ChangeAction.SCHEDULE:
            subscription.pending_plan_id, subscription.pending_billing_period = target_plan.id, target_period
        elif decision.action is ChangeAction.CLEAR_SCHEDULE:
            subscription.pending_plan_id = subscription.pending_billing_period = None
        elif decision.action is ChangeAction.APPLY_NOW:
            if target_key != current_key:
                subscription.pending_plan_version = None
            subscription.plan_id, subscription.plan_version = target_key
            subscription.billing_period = target_period
            subscription.pending_plan_id = subscription.pending_billing_period = None
            if decision.bill is None:  # a trial: the plan changes, nothing is billed
                await record_trial(session, organization_id, target_plan.id, now)
            else:
                subscription.agent_count = agents
                if usage is not None:  # billed now: counters start again for the new plan
                    subscription.usage_billed = usage.billed_now(period)
                if decision.restart_period:
                    subscription.period_anchor = priced_at
                    subscription.current_period_start = priced_at
                    subscription.current_period_end = decision.new_period_end
                await _book(uow, subscription, result, decision.bill, method, period_end=decision.new_period_end,
                            currency=currency, items=items)
        subscription.updated_at = now
        _announce(uow, subscription, before, result, action="subscription.plan_changed"
                  if effective is Effective.IMMEDIATE else "subscription.change_scheduled")
        uow.done(result.response())
    return result


async def _book(uow: MoneyMove, subscription: Subscription, result: SubscriptionChange, bill: ChangeBill,
                method: PaymentMethod | None, *, period_end: datetime, currency: str,
                items: list[InvoiceItem]) -> None:
    """Book a priced change: bill a positive total (a prorated invoice, with the pending one-off
    ``items`` priced into it), or add a credit (the items keep waiting)."""
    if bill.invoice is not None:
        result.invoice, result.payment = await bill_subscription(
            uow, subscription, bill.invoice, billing_reason=BillingReason.SUBSCRIPTION_UPDATE,
            period_start=uow.now, period_end=period_end, payment_method=method,
        )
        bill_items(items, result.invoice, uow.now)
    elif bill.credit:
        result.credit_added = bill.credit
        add_account_credit(uow.organization, result.credit_added, currency, source=CreditSource.DOWNGRADE,
                           reason="unused part of the period handed back by a change", now=uow.now)


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
    idempotency_key: str | None = None, dry_run: bool = False, proration_date: datetime | None = None,
    gateways: GatewayRegistry, now: datetime,
) -> SubscriptionChange:
    """Attach an add-on, or set the quantity of an attached one; prorated like a plan change
    (``dry_run`` and ``proration_date`` as for ``change_plan``)."""
    if quantity < 1 or quantity > 10_000:
        raise validation("Quantity is 1 to 10000.", "quantity")
    return await _change_addon(db, actor, organization_id=organization_id, addon_id=addon_id, quantity=quantity,
                               idempotency_key=idempotency_key, dry_run=dry_run, proration_date=proration_date,
                               gateways=gateways, now=now)


async def detach_addon(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, addon_id: uuid.UUID,
    idempotency_key: str | None = None, dry_run: bool = False, proration_date: datetime | None = None,
    gateways: GatewayRegistry, now: datetime,
) -> SubscriptionChange:
    """Detach an add-on; the unused part of its price becomes account credit."""
    return await _change_addon(db, actor, organization_id=organization_id, addon_id=addon_id, quantity=0,
                               idempotency_key=idempotency_key, dry_run=dry_run, proration_date=proration_date,
                               gateways=gateways, now=now)


async def _change_addon(
    db: Database, actor: Actor | None, *, organization_id: uuid.UUID, addon_id: uuid.UUID, quantity: int,
    idempotency_key: str | None, dry_run: bool, proration_date: datetime | None, gateways: GatewayRegistry,
    now: datetime,
) -> SubscriptionChange:
    operation = "attach_addon" if quantity else "detach_addon"
    request: dict = {"addon_id": addon_id, "quantity": quantity}
    if proration_date is not None:
        request["proration_date"] = proration_date
    async with money_move(db, organization_id, operation, idempotency_key, request, actor=actor, now=now,
                          gateways=gateways, dry_run=dry_run) as uow:
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
            label = "monthly" if period is BillingPeriod.MONTHLY else "annual"
            current = Period(subscription.current_period_start, subscription.current_period_end)
            items = await pending_items(session, organization_id, plan.currency)
            bill = price_change(
                old_total=old_total, new_total=new_total,
                period=current, now=proration_instant(proration_date, now=now, period=current),
                restart_period=False, new_period_end=subscription.current_period_end,
                old_description=f"{addon.name} add-on x {old_quantity} ({label})",
                new_description=f"{addon.name} add-on x {quantity} ({label})", currency=plan.currency,
                old_detail={"addon": addon.name, "quantity": old_quantity, "period": period.value},
                new_detail={"addon": addon.name, "quantity": quantity, "period": period.value},
                discount=discount_of(await _load_coupon(session, subscription), subscription, proration=True),
                tax_rule=await tax_rule_for(session, plan.currency, now),
                account_credit=available_credit(organization, plan.currency), pending_lines=item_lines(items),
            )
            result.preview = preview_of(bill)
            method = await payment_method_for(session, organization_id, None) if bill.amount_due > 0 else None
            require_payment(bill, method is not None)
            if dry_run:
                return result
            await _book(uow, subscription, result, bill, method, period_end=subscription.current_period_end,
                        currency=plan.currency, items=items)
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
