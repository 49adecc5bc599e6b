"""Charging the billing run's invoices, and dunning: retries on a schedule, then UNPAID (or CANCELED).

``collect`` charges an OPEN invoice to the organization's default payment method through the
gateway (``charge_invoice``: a PENDING payment first, its gateway key derived from its id).
The payment id is derived from the invoice's subscription, period and attempt, so a run that
crashed after the processor answered and rolled back sends the same key again when the next
run redoes the work, and the processor answers with the first outcome instead of charging twice.

Outcomes: PAID; DECLINED (the processor said no); NO_METHOD (no default payment method:
``invoice.payment_failed`` with ``failure_code`` ``payment_required``); PENDING (a processor
fault: the payment is reconciled by the next retry with the same key).

``settle`` moves the subscription: all paid -> ACTIVE (from TRIALING, PAST_DUE or UNPAID, its
dunning counters reset); a decline or no method -> PAST_DUE and the dunning schedule starts at
this first failure (``domain.dunning``); a pending payment schedules a retry that reconciles it.
After the last retry fails: UNPAID, and CANCELED with ``BILLING_DUNNING_FINAL_ACTION=cancel``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import BillingReason, Invoice, Organization, Payment, PaymentStatus, Subscription
from billing_graphql.domain.dunning import retries_exhausted, retry_at
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayError
from billing_graphql.services.billing.charging import charge_invoice, default_payment_method, reconcile_payment
from billing_graphql.services.billing.invoicing import amount_due, invoice_event_payload
from billing_graphql.services.billing.renewals import RunConfig, Tally, derived_id, move
from billing_graphql.services.platform.audit import emit_event

PAYMENT_REQUIRED = "payment_required"


class Outcome(enum.Enum):
    PAID = "PAID"
    DECLINED = "DECLINED"
    NO_METHOD = "NO_METHOD"
    PENDING = "PENDING"


def _failed(outcome: Outcome) -> bool:
    return outcome in (Outcome.DECLINED, Outcome.NO_METHOD)


async def collect(session: AsyncSession, organization: Organization, subscription: Subscription, invoice: Invoice,
                  at: datetime, config: RunConfig, *, attempt: int) -> Outcome:
    """Charge what ``invoice`` owes to the default method (attempt 0: the first charge; n: retry n)."""
    if amount_due(invoice) <= 0:
        await charge_invoice(session, invoice, None, None, at)
        return Outcome.PAID
    method = await default_payment_method(session, organization.id)
    if method is None:
        invoice.updated_at = at
        emit_event(session, event_type="invoice.payment_failed", organization_id=organization.id,
                   payload=invoice_event_payload(invoice, payment_id=None, failure_code=PAYMENT_REQUIRED,
                                                 failure_message="The organization has no default payment method."),
                   now=at)
        return Outcome.NO_METHOD
    try:
        gateway = config.gateways.get(method.gateway)
    except (GatewayError, LookupError, ValueError):
        gateway = None
    if gateway is None:
        invoice.updated_at = at
        emit_event(session, event_type="invoice.payment_failed", organization_id=organization.id,
                   payload=invoice_event_payload(invoice, payment_id=None, failure_code="gateway_unavailable",
                                                 failure_message=f"The {method.gateway} gateway is not configured."),
                   now=at)
        return Outcome.DECLINED
    # A cycle invoice is one per subscription and period: its payments are keyed on them (its own
    # id is new on every attempt to create it); any other invoice was committed before: its id.
    if invoice.billing_reason is BillingReason.SUBSCRIPTION_CYCLE:
        payment_id = derived_id("payment", invoice.subscription_id, invoice.period_start.isoformat(), attempt)
    else:
        payment_id = derived_id("payment", invoice.id, attempt)
    payment = await charge_invoice(session, invoice, method, gateway, at, payment_id=payment_id)
    return _outcome(payment)


def _outcome(payment: Payment | None) -> Outcome:
    if payment is None or payment.status is PaymentStatus.SUCCEEDED:
        return Outcome.PAID
    if payment.status is PaymentStatus.FAILED:
        return Outcome.DECLINED
    return Outcome.PENDING


async def open_invoices(session: AsyncSession, subscription: Subscription) -> list[Invoice]:
    rows = await session.scalars(
        select(Invoice).where(Invoice.subscription_id == subscription.id, Invoice.status == InvoiceStatus.OPEN)
        .order_by(Invoice.finalized_at, Invoice.created_at, Invoice.id)
    )
    return list(rows.all())


async def start_if_needed(session: AsyncSession, subscription: Subscription, config: RunConfig) -> None:
    """A subscription that went PAST_DUE outside the run (a declined first charge at subscribe)
    gets its dunning schedule, counted from its oldest open invoice."""
    if subscription.status is not SubscriptionStatus.PAST_DUE or subscription.next_retry_at is not None:
        return
    if retries_exhausted(subscription.retry_count, config.dunning_days):
        return
    invoices = await open_invoices(session, subscription)
    if invoices:
        first_failure = invoices[0].finalized_at or invoices[0].created_at
        subscription.next_retry_at = retry_at(first_failure, subscription.retry_count, config.dunning_days)


async def settle(session: AsyncSession, subscription: Subscription, outcomes: list[Outcome], at: datetime,
                 config: RunConfig, tally: Tally, *, new_invoice: bool) -> None:
    """Move the subscription after charging (see the module's docstring)."""
    tally.paid += sum(outcome is Outcome.PAID for outcome in outcomes)
    tally.failed += sum(_failed(outcome) for outcome in outcomes)
    if all(outcome is Outcome.PAID for outcome in outcomes):
        if subscription.status is SubscriptionStatus.TRIALING:
            move(session, subscription, SubscriptionStatus.ACTIVE, at)
        elif subscription.status is not SubscriptionStatus.ACTIVE and not await open_invoices(session, subscription):
            _reset(subscription)
            move(session, subscription, SubscriptionStatus.ACTIVE, at)
        return
    if any(_failed(outcome) for outcome in outcomes):
        if subscription.status in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE):
            move(session, subscription, SubscriptionStatus.PAST_DUE, at)
    if new_invoice and subscription.next_retry_at is None:
        # The first failure (or a pending payment): the schedule starts now.
        subscription.retry_count = 0
        subscription.next_retry_at = retry_at(at, 0, config.dunning_days)
        if subscription.next_retry_at is None and subscription.status is SubscriptionStatus.PAST_DUE:
            _exhausted(session, subscription, at, config, tally)


def _reset(subscription: Subscription) -> None:
    subscription.retry_count = 0
    subscription.last_retry_at = None
    subscription.next_retry_at = None


def _exhausted(session: AsyncSession, subscription: Subscription, at: datetime, config: RunConfig,
               tally: Tally) -> None:
    subscription.next_retry_at = None
    move(session, subscription, SubscriptionStatus.UNPAID, at)
    if config.cancel_when_exhausted:
        subscription.cancel_reason = "Canceled after the last payment retry failed."
        move(session, subscription, SubscriptionStatus.CANCELED, at)
        tally.canceled += 1


async def retry(session: AsyncSession, organization: Organization, subscription: Subscription, at: datetime,
                config: RunConfig, tally: Tally) -> None:
    """A dunning retry: every OPEN invoice of the subscription charged again (a pending payment is
    reconciled with its own key instead), counted on the invoice and the subscription."""
    invoices = await open_invoices(session, subscription)
    outcomes: list[Outcome] = []
    for invoice in invoices:
        pending = await session.scalar(
            select(Payment).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
            .order_by(Payment.created_at).limit(1)
        )
        if pending is not None:
            try:
                gateway = config.gateways.get(pending.gateway)
                outcomes.append(_outcome(await reconcile_payment(session, pending, gateway, at)))
            except (GatewayError, LookupError, ValueError):
                outcomes.append(Outcome.PENDING)
            continue
        invoice.retry_count += 1
        invoice.last_retry_at = at
        outcomes.append(await collect(session, organization, subscription, invoice, at, config,
                                      attempt=invoice.retry_count))
    first_failure = min((invoice.finalized_at or invoice.created_at for invoice in invoices), default=at)
    subscription.retry_count += 1
    subscription.last_retry_at = at
    subscription.updated_at = at
    if all(outcome is Outcome.PAID for outcome in outcomes):
        tally.paid += len(outcomes)
        _reset(subscription)
        move(session, subscription, SubscriptionStatus.ACTIVE, at)
        return
    await settle(session, subscription, [o for o in outcomes if o is not Outcome.PAID], at, config, tally,
                 new_invoice=False)
    tally.paid += sum(outcome is Outcome.PAID for outcome in outcomes)
    subscription.next_retry_at = retry_at(first_failure, subscription.retry_count, config.dunning_days)
    if subscription.next_retry_at is None and subscription.status is SubscriptionStatus.PAST_DUE:
        _exhausted(session, subscription, at, config, tally)
