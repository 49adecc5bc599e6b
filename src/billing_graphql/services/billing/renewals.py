"""The billing run's work for one subscription: the trial-will-end notice, trial ends and period
ends (a scheduled change applied, a cancellation at period end, else a renewal invoice).

``advance_subscription`` does everything due for one subscription up to an instant, step by
step (``domain.billing_run.next_step``), each step at its own instant (``uow.at``), inside the
caller's unit of work (``jobs.billing_run`` opens it: the transaction, the organization's lock,
the gateways). Charging and
dunning are in ``services.billing.dunning``; what both use is in ``services.billing.run_shared``.

The renewal invoice (``renewal_draft``, also ``upcoming_invoice``, so the preview and the run
are one computation) for the new period: the plan's base for the billing period, seats beyond
the included agents, add-ons (FLAT and PER_AGENT), the ended period's overage (COUNTER usage
above the plan's limits, only ``messages`` priced, at ``overage_message_price``, capped by the spending cap;
``domain.overage``), the coupon while it still runs (``domain.coupon_duration``), the organization's pending one-off items (``invoice_items``), tax from the
tax rows, account credit after tax.

Usage counters read: ``usage_counters`` rows of COUNTER metrics whose ``period_key`` is one of
the ended period's billing months (``domain.overage.usage_month_keys``, the keys ingestion writes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db import mrr_history
from billing_graphql.db.models import (
    BillingReason,
    Coupon,
    Invoice,
    InvoiceItem,
    Metric,
    MetricKind,
    Organization,
    Plan,
    PlanLimit,
    Subscription,
    UsageCounter,
)
from billing_graphql.domain.billing_run import Step, next_period, next_step
from billing_graphql.domain.coupon_duration import coupon_applies
from billing_graphql.domain.invoices import InvoiceDraft, InvoiceLineKind, LineDraft, period_lines
from billing_graphql.domain.overage import cap_overage, metric_overage, overage_unit_price, usage_month_keys
from billing_graphql.domain.periods import BillingPeriod, Period
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.billing import dunning
from billing_graphql.services.billing.invoice_items import bill_items, item_lines, pending_items
from billing_graphql.services.billing.invoicing import create_invoice, draft_invoice, finalize_invoice, tax_rule_for
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.subscriptions.coupons import consume_coupon_period, coupon_discount
from billing_graphql.services.subscriptions.pricing import attached_addons, current_agents, recurring
from billing_graphql.services.billing.run_shared import RunConfig, Tally, due_state, move, subscription_payload
from billing_graphql.services.subscriptions.results import SUBSCRIPTION_FIELDS, InvoicePreview
from billing_graphql.services.unit_of_work import MoneyMove

MAX_STEPS = 10_000  # a guard: no subscription has this many steps due


# ---- pricing a renewal ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Renewal:
    """What a period end turns into: the plan and period billed next, and the invoice's draft."""

    plan: Plan
    billing_period: BillingPeriod
    anchor: datetime
    period: Period
    agents: int
    draft: InvoiceDraft
    coupon_used: bool
    items: tuple[InvoiceItem, ...] = ()  # the pending one-off items the draft bills


async def overage_lines(session: AsyncSession, organization_id: uuid.UUID, plan: Plan, ended: Period,
                        seats_amount: int, cap: int | None) -> list[LineDraft]:
    """The ended period's overage lines (COUNTER metrics with a price above ``plan``'s limits), capped."""
    rows = (await session.execute(
        select(Metric.id, Metric.code, Metric.name, PlanLimit.limit_value)
        .join(PlanLimit, PlanLimit.metric_id == Metric.id)
        .where(PlanLimit.plan_id == plan.id, Metric.kind == MetricKind.COUNTER, PlanLimit.limit_value.is_not(None))
        .order_by(Metric.code)
    )).all()
    prices = {row.id: overage_unit_price(row.code, plan.overage_message_price) for row in rows}
    limits = [row for row in rows if prices[row.id] is not None]
    keys = usage_month_keys(ended)
    if not limits or not keys:
        return []
    counted = (await session.execute(
        select(UsageCounter.metric_id, UsageCounter.period_key, UsageCounter.value).where(
            UsageCounter.organization_id == organization_id,
            UsageCounter.metric_id.in_([row.id for row in limits]),
            UsageCounter.period_key.in_(keys),
        )
    )).all()
    usage: dict[uuid.UUID, dict[str, int]] = {}
    for metric_id, key, value in counted:
        usage.setdefault(metric_id, {})[key] = int(value)
    overages = [
        metric_overage(row.code, row.name, [usage.get(row.id, {}).get(key, 0) for key in keys], row.limit_value,
                       prices[row.id])
        for row in limits
    ]
    billed = cap_overage(overages, seats_amount, cap)
    lines = []
    for row, overage, amount in zip(limits, overages, billed, strict=True):
        if overage.units == 0:
            continue
        description = f"{row.name} above the {row.limit_value:,} included per month"
        if amount < overage.amount:
            description += " (capped by the spending cap)"
        lines.append(LineDraft(kind=InvoiceLineKind.OVERAGE, description=description, quantity=Decimal(overage.units),
                               unit_amount=Decimal(prices[row.id]), amount=amount,
                               period_start=ended.start, period_end=ended.end))
    return lines


async def renewal_draft(session: AsyncSession, organization: Organization, subscription: Subscription,
                        *, at: datetime, trial_end: bool) -> Renewal:
    """Price what the period ending at ``at`` (= ``current_period_end``) renews into; writes nothing.

    A scheduled change is priced as applied (a change of billing period re-anchors at ``at``).
    """
    plan_id = subscription.pending_plan_id or subscription.plan_id
    billing_period = subscription.pending_billing_period or subscription.billing_period
    plan = await session.get(Plan, plan_id)
    ended_plan = plan if plan_id == subscription.plan_id else await session.get(Plan, subscription.plan_id)
    anchor = at if billing_period is not subscription.billing_period else subscription.period_anchor
    period = next_period(anchor, billing_period, at)
    agents = await current_agents(session, organization.id, fallback=subscription.agent_count)
    prices = recurring(plan, billing_period, agents, await attached_addons(session, subscription.id))
    lines = period_lines(prices, period.start, period.end)
    if not trial_end:
        ended = Period(subscription.current_period_start, subscription.current_period_end)
        lines += await overage_lines(session, organization.id, ended_plan, ended, prices.seats_amount,
                                     subscription.spending_cap)
    coupon_used = coupon_applies(subscription.coupon_periods_remaining, has_coupon=subscription.coupon_id is not None)
    discount = None
    if coupon_used:
        coupon = await session.get(Coupon, subscription.coupon_id)
        discount = coupon_discount(coupon) if coupon is not None else None
    items = await pending_items(session, organization.id, plan.currency)
    lines += item_lines(items)
    draft = draft_invoice(organization, plan.currency, lines, discount=discount,
                          tax_rule=await tax_rule_for(session, plan.currency, at))
    return Renewal(plan, billing_period, anchor, period, agents, draft, coupon_used, tuple(items))


async def upcoming_invoice(session: AsyncSession, subscription: Subscription) -> InvoicePreview | None:
    """What the next period end will bill (the run's own computation, nothing written); None when
    the subscription ends then or has ended."""
    if subscription.status is SubscriptionStatus.CANCELED or subscription.cancel_at_period_end:
        return None
    organization = await session.get(Organization, subscription.organization_id)
    renewal = await renewal_draft(session, organization, subscription, at=subscription.current_period_end,
                                  trial_end=subscription.status is SubscriptionStatus.TRIALING)
    return InvoicePreview.of_invoice(renewal.draft)


# ---- the steps ------------------------------------------------------------------------------

async def advance_subscription(uow: MoneyMove, subscription: Subscription, now: datetime,
                               config: RunConfig) -> Tally:
    """Do every step due for ``subscription`` up to ``now``, oldest first, each at its instant."""
    tally = Tally(examined=1)
    await dunning.start_if_needed(uow.session, subscription, config)
    for _ in range(MAX_STEPS):
        step = next_step(due_state(subscription), now)
        if step is None:
            return tally
        with uow.at(step.at):
            if step.step is Step.TRIAL_WILL_END:
                subscription.trial_will_end_sent_at = step.at
                uow.emit("subscription.trial_will_end", subscription_payload(subscription))
            elif step.step is Step.DUNNING_RETRY:
                await dunning.retry(uow, subscription, config, tally)
            else:
                await end_period(uow, subscription, config, tally, trial_end=step.step is Step.TRIAL_END)
        # The MRR history of this step, dated at its instant (not at the run's last step's).
        await uow.session.run_sync(mrr_history.record_pending, step.at)
    raise RuntimeError(f"subscription {subscription.id} still has steps due after {MAX_STEPS}")


async def end_period(uow: MoneyMove, subscription: Subscription, config: RunConfig, tally: Tally, *,
                     trial_end: bool) -> None:
    """Cancel at period end, or apply the scheduled change and renew with an invoice (at ``uow.now``)."""
    session, organization, at = uow.session, uow.organization, uow.now
    if subscription.cancel_at_period_end:
        move(uow, subscription, SubscriptionStatus.CANCELED)
        tally.canceled += 1
        return
    renewal = await renewal_draft(session, organization, subscription, at=at, trial_end=trial_end)
    before = snapshot(subscription, *SUBSCRIPTION_FIELDS)
    plan_changed = (renewal.plan.id, renewal.billing_period) != (subscription.plan_id, subscription.billing_period)
    subscription.plan_id, subscription.billing_period = renewal.plan.id, renewal.billing_period
    subscription.pending_plan_id = subscription.pending_billing_period = None
    subscription.period_anchor = renewal.anchor
    subscription.current_period_start, subscription.current_period_end = renewal.period.start, renewal.period.end
    subscription.agent_count = renewal.agents
    if renewal.coupon_used:
        consume_coupon_period(subscription)
    subscription.updated_at = at
    if plan_changed and not trial_end:
        uow.emit("subscription.updated", subscription_payload(subscription, before))
    invoice = await _cycle_invoice(session, organization, subscription, renewal.draft, at)
    bill_items(renewal.items, invoice, at)
    tally.invoice_ids.append(invoice.id)
    if subscription.status is SubscriptionStatus.UNPAID:
        return  # dunning is over: the invoice waits for payInvoice
    outcome = await dunning.collect(uow, invoice, attempt=0)
    await dunning.settle(uow, subscription, [outcome], config, tally, new_invoice=True)


async def _cycle_invoice(session: AsyncSession, organization: Organization, subscription: Subscription,
                         draft: InvoiceDraft, at: datetime) -> Invoice:
    """The period's invoice, created and finalized (one per subscription and period: a unique index)."""
    invoice = await create_invoice(
        session, organization, draft, subscription_id=subscription.id, billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
        period_start=subscription.current_period_start, period_end=subscription.current_period_end, now=at,
    )
    return await finalize_invoice(session, invoice, at)
