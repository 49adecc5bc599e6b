"""The billing run's work for one subscription: the trial-will-end notice, trial ends and period
ends (a scheduled change applied, a cancellation at period end, else a renewal invoice).

``advance_subscription`` does everything due for one subscription up to an instant, step by
step (``domain.billing_run.next_step``), each step at its own instant (``uow.at``), inside the
caller's unit of work (``jobs.billing_run`` opens it: the transaction, the organization's lock,
the gateways). Charging and
dunning are in ``services.billing.dunning``; what both use is in ``services.billing.run_shared``.

The renewal invoice (``renewal_draft``, also ``upcoming_invoice``, so the preview and the run
are one computation) for the new period: the plan's base for the billing period, seats beyond
the included agents, add-ons (FLAT and PER_AGENT), the ended period's usage in arrears (one USAGE
line per charge of the plan version the subscription was on, capped by the spending cap;
``services.billing.usage_charges``), the coupon while it still runs (``domain.coupon_duration``),
the organization's pending one-off items (``invoice_items``, after the usage lines), tax from the
tax rows, account credit after tax.

Prices are those of the version the subscription pays from the new period on
(``domain.plan_versions.version_at_renewal``: a move asked with AT_RENEWAL happens here, with
``subscription.updated``), read through ``services.subscriptions.pricing.version_price``; a
scheduled plan change starts on that plan's current version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db import mrr_history
from billing_graphql.db.models import (
    Addon,
    BillingReason,
    Coupon,
    Invoice,
    InvoiceItem,
    Organization,
    Plan,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.domain.billing_run import Step, next_period, next_step
from billing_graphql.domain.coupon_duration import coupon_applies
from billing_graphql.domain.invoices import InvoiceDraft, period_lines
from billing_graphql.domain.plan_versions import version_at_renewal
from billing_graphql.domain.periods import BillingPeriod, Period
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.billing import dunning
from billing_graphql.services.billing.invoice_items import bill_items, item_lines, pending_items
from billing_graphql.services.billing.invoicing import create_invoice, draft_invoice, finalize_invoice, tax_rule_for
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.subscriptions.coupons import consume_coupon_period, coupon_discount
from billing_graphql.domain.proration import PlanPrice
from billing_graphql.domain.tax import TaxRule
from billing_graphql.services.billing.usage_charges import MetricAmount, already_billed, priced_usage, usage_lines
from billing_graphql.services.subscriptions.pricing import attached_addons, current_agents, recurring, version_price
from billing_graphql.services.billing.run_shared import RunConfig, Tally, due_state, move, subscription_payload
from billing_graphql.services.subscriptions.results import SUBSCRIPTION_FIELDS, InvoicePreview
from billing_graphql.services.unit_of_work import MoneyMove

MAX_STEPS = 10_000  # a guard: no subscription has this many steps due


# ---- pricing a renewal ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Renewal:
    """What a period end turns into: the plan and period billed next, and the invoice's draft."""

    plan: Plan
    version: int
    billing_period: BillingPeriod
    anchor: datetime
    period: Period
    agents: int
    draft: InvoiceDraft
    coupon_used: bool
    items: tuple[InvoiceItem, ...] = ()  # the pending one-off items the draft bills


@dataclass(frozen=True, slots=True)
class RenewalInputs:
    """What pricing a renewal reads from the database (``renewal_inputs`` for one subscription, the
    batch's bulk reads for many: ``services.billing.renewal_batch``); ``price_renewal`` turns it
    into the ``Renewal``."""

    plan: Plan
    version: int
    billing_period: BillingPeriod
    price: PlanPrice
    agents: int
    addons: tuple[tuple[SubscriptionAddon, Addon], ...]
    usage: tuple[MetricAmount, ...]  # the ended period's usage priced (empty at a trial's end)
    coupon: Coupon | None  # the coupon when it applies to this invoice
    items: tuple[InvoiceItem, ...]
    tax_rule: TaxRule | None


def renewal_plan(subscription: Subscription) -> tuple[uuid.UUID, BillingPeriod]:
    """The plan and billing period the next period is billed on (a scheduled change applied)."""
    return (subscription.pending_plan_id or subscription.plan_id,
            subscription.pending_billing_period or subscription.billing_period)


def renewal_version(subscription: Subscription, plan: Plan) -> int:
    """The plan version paid from the next period on (a scheduled change: the plan's current one)."""
    return (plan.version if subscription.pending_plan_id is not None
            else version_at_renewal(subscription.plan_version, subscription.pending_plan_version))


def ended_period(subscription: Subscription) -> Period:
    return Period(subscription.current_period_start, subscription.current_period_end)


async def renewal_inputs(session: AsyncSession, organization: Organization, subscription: Subscription,
                         *, at: datetime, trial_end: bool) -> RenewalInputs:
    """Read what renewing ``subscription`` at ``at`` is priced from (one subscription's statements)."""
    plan_id, billing_period = renewal_plan(subscription)
    plan = await session.get(Plan, plan_id)
    version = renewal_version(subscription, plan)
    usage: tuple[MetricAmount, ...] = ()
    if not trial_end:
        ended = ended_period(subscription)
        key = (subscription.plan_id, subscription.plan_version)
        used = await priced_usage(session, organization.id, [key], ended,
                                  billed=already_billed(subscription.usage_billed, ended))
        usage = tuple(used.by_version[key])
    coupon = None
    if coupon_applies(subscription.coupon_periods_remaining, has_coupon=subscription.coupon_id is not None):
        coupon = await session.get(Coupon, subscription.coupon_id)
    return RenewalInputs(
        plan=plan, version=version, billing_period=billing_period, price=await version_price(session, plan, version),
        agents=await current_agents(session, organization.id, fallback=subscription.agent_count),
        addons=tuple(await attached_addons(session, subscription.id)), usage=usage, coupon=coupon,
        items=tuple(await pending_items(session, organization.id, plan.currency)),
        tax_rule=await tax_rule_for(session, plan.currency, at))


def price_renewal(organization: Organization, subscription: Subscription, inputs: RenewalInputs, *,
                  at: datetime, trial_end: bool) -> Renewal:
    """Price what the period ending at ``at`` (= ``current_period_end``) renews into, from
    ``inputs``; writes nothing. A scheduled change is priced as applied (a change of billing
    period re-anchors at ``at``)."""
    billing_period = inputs.billing_period
    anchor = at if billing_period is not subscription.billing_period else subscription.period_anchor
    period = next_period(anchor, billing_period, at)
    prices = recurring(inputs.price, billing_period, inputs.agents, list(inputs.addons))
    lines = period_lines(prices, period.start, period.end)
    if not trial_end:
        lines += usage_lines(inputs.usage, ended_period(subscription), seats_amount=prices.seats_amount,
                             cap=subscription.spending_cap)
    coupon_used = coupon_applies(subscription.coupon_periods_remaining, has_coupon=subscription.coupon_id is not None)
    discount = coupon_discount(inputs.coupon) if inputs.coupon is not None else None
    lines += item_lines(inputs.items)
    draft = draft_invoice(organization, inputs.plan.currency, lines, discount=discount, tax_rule=inputs.tax_rule)
    return Renewal(inputs.plan, inputs.version, billing_period, anchor, period, inputs.agents, draft, coupon_used,
                   inputs.items)


async def renewal_draft(session: AsyncSession, organization: Organization, subscription: Subscription,
                        *, at: datetime, trial_end: bool) -> Renewal:
    """Price what the period ending at ``at`` renews into (``renewal_inputs`` then ``price_renewal``)."""
    inputs = await renewal_inputs(session, organization, subscription, at=at, trial_end=trial_end)
    return price_renewal(organization, subscription, inputs, at=at, trial_end=trial_end)


def upcoming_renewal(subscription: Subscription) -> tuple[datetime, bool] | None:
    """When the next renewal is priced and whether it ends a trial: at the current period's end (a
    trial's end); None when the subscription ends then or has ended."""
    if subscription.status is SubscriptionStatus.CANCELED or subscription.cancel_at_period_end:
        return None
    return subscription.current_period_end, subscription.status is SubscriptionStatus.TRIALING


async def upcoming_invoice(session: AsyncSession, subscription: Subscription) -> InvoicePreview | None:
    """What the next period end will bill (the run's own computation, nothing written); None when
    the subscription ends then or has ended (``upcoming_renewal``). The compiled path reads the
    same on the driver's connection: ``services.billing.renewal_reads.live_upcoming``."""
    due = upcoming_renewal(subscription)
    if due is None:
        return None
    at, trial_end = due
    organization = await session.get(Organization, subscription.organization_id)
    renewal = await renewal_draft(session, organization, subscription, at=at, trial_end=trial_end)
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
    apply_renewal(uow, subscription, renewal, trial_end=trial_end)
    invoice = await _cycle_invoice(session, organization, subscription, renewal.draft, at)
    bill_items(renewal.items, invoice, at)
    tally.invoice_ids.append(invoice.id)
    if subscription.status is SubscriptionStatus.UNPAID:
        return  # dunning is over: the invoice waits for payInvoice
    outcome = await dunning.collect(uow, invoice, attempt=0)
    await dunning.settle(uow, subscription, [outcome], config, tally, new_invoice=True)


def apply_renewal(uow: MoneyMove, subscription: Subscription, renewal: Renewal, *, trial_end: bool) -> None:
    """The subscription moves into the renewed period at ``uow.now`` (the scheduled change applied,
    a coupon month used), announced with ``subscription.updated`` when its plan or version moved."""
    at = uow.now
    plan_changed = (renewal.plan.id, renewal.billing_period) != (subscription.plan_id, subscription.billing_period)
    version_moved = not plan_changed and renewal.version != subscription.plan_version
    announced = (plan_changed and not trial_end) or version_moved
    before = snapshot(subscription, *SUBSCRIPTION_FIELDS) if announced else None  # only the event shows it
    subscription.plan_id, subscription.billing_period = renewal.plan.id, renewal.billing_period
    subscription.plan_version, subscription.pending_plan_version = renewal.version, None
    subscription.usage_billed = None  # the ended period's usage is billed: the new one starts from nothing
    subscription.pending_plan_id = subscription.pending_billing_period = None
    subscription.period_anchor = renewal.anchor
    subscription.current_period_start, subscription.current_period_end = renewal.period.start, renewal.period.end
    subscription.agent_count = renewal.agents
    if renewal.coupon_used:
        consume_coupon_period(subscription)
    subscription.updated_at = at
    if announced:
        uow.emit("subscription.updated", subscription_payload(subscription, before))


async def _cycle_invoice(session: AsyncSession, organization: Organization, subscription: Subscription,
                         draft: InvoiceDraft, at: datetime) -> Invoice:
    """The period's invoice, created and finalized (one per subscription and period: a unique index)."""
    invoice = await create_invoice(
        session, organization, draft, subscription_id=subscription.id, billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
        period_start=subscription.current_period_start, period_end=subscription.current_period_end, now=at,
    )
    return await finalize_invoice(session, invoice, at)
