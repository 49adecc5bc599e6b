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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import BillingReason, Invoice, Payment, PaymentStatus, Subscription
from billing_graphql.domain.dunning import retries_exhausted, retry_at
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayError
from billing_graphql.services.billing.charging import charge_invoice, default_payment_method, reconcile_payment
from billing_graphql.services.billing.invoicing import amount_due, invoice_event_payload
from billing_graphql.services.billing.run_shared import RunConfig, Tally, derived_id, move
from billing_graphql.services.unit_of_work import MoneyMove

PAYMENT_REQUIRED = "payment_required"


class Outcome(enum.Enum):
    PAID = "PAID"
    DECLINED = "DECLINED"
    NO_METHOD = "NO_METHOD"
    PENDING = "PENDING"


def _failed(outcome: Outcome) -> bool:
    return outcome in (Outcome.DECLINED, Outcome.NO_METHOD)


async def collect(uow: MoneyMove, invoice: Invoice, *, attempt: int) -> Outcome:
    """Charge what ``invoice`` owes to the default method at ``uow.now`` (attempt 0: the first
    charge; n: retry n)."""
    session, organization, at = uow.session, uow.organization, uow.now
    if amount_due(invoice) <= 0:
        await charge_invoice(session, invoice, None, None, at)
        return Outcome.PAID
    method = await default_payment_method(session, organization.id)
    if method is None:
        return _not_charged(uow, invoice, PAYMENT_REQUIRED, "The organization has no default payment method.",
                            Outcome.NO_METHOD)
    gateway = uow.available_gateway(method.gateway)
    if gateway is None:
        return _not_charged(uow, invoice, "gateway_unavailable", f"The {method.gateway} gateway is not configured.",
                            Outcome.DECLINED)
    payment = await charge_invoice(session, invoice, method, gateway, at, payment_id=payment_id(invoice, attempt))
    return outcome_of(payment)


def payment_id(invoice: Invoice, attempt: int):
    """The id (hence the processor's key) of the payment of ``invoice``'s attempt ``attempt``.

    A cycle invoice is one per subscription and period: its payments are keyed on them (its own
    id is new on every attempt to create it); any other invoice was committed before: its id."""
    if invoice.billing_reason is BillingReason.SUBSCRIPTION_CYCLE:
        return derived_id("payment", invoice.subscription_id, invoice.period_start.isoformat(), attempt)
    return derived_id("payment", invoice.id, attempt)


def _not_charged(uow: MoneyMove, invoice: Invoice, failure_code: str, failure_message: str,
                 outcome: Outcome) -> Outcome:
    """No charge could be sent: ``invoice.payment_failed`` says why."""
    invoice.updated_at = uow.now
    uow.emit("invoice.payment_failed", invoice_event_payload(invoice, payment_id=None, failure_code=failure_code,
                                                             failure_message=failure_message))
    return outcome


def outcome_of(payment: Payment | None) -> Outcome:
    if payment is None or payment.status is PaymentStatus.SUCCEEDED:
        return Outcome.PAID
    if payment.status is PaymentStatus.FAILED:
        return Outcome.DECLINED
    return Outcome.PENDING


async def open_invoices(session: AsyncSession, subscription: Subscription) -> list[Invoice]:
    """The subscription's OPEN invoices, oldest first, as this unit of work left them: the write
    session does not autoflush, so an invoice made (or paid) by an earlier step of the same run is
    flushed first, else a retry due in the same run would find nothing to charge."""
    await session.flush()
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


async def settle(uow: MoneyMove, subscription: Subscription, outcomes: list[Outcome], config: RunConfig,
                 tally: Tally, *, new_invoice: bool) -> None:
    """Move the subscription after charging (see the module's docstring)."""
    session, at = uow.session, uow.now
    tally.paid += sum(outcome is Outcome.PAID for outcome in outcomes)
    tally.failed += sum(_failed(outcome) for outcome in outcomes)
    if all(outcome is Outcome.PAID for outcome in outcomes):
        if subscription.status is SubscriptionStatus.TRIALING:
            move(uow, subscription, SubscriptionStatus.ACTIVE)
        elif subscription.status is not SubscriptionStatus.ACTIVE and not await open_invoices(session, subscription):
            _reset(subscription)
            move(uow, subscription, SubscriptionStatus.ACTIVE)
        return
    if any(_failed(outcome) for outcome in outcomes):
        if subscription.status in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE):
            move(uow, subscription, SubscriptionStatus.PAST_DUE)
    if new_invoice and subscription.next_retry_at is None:
        # The first failure (or a pending payment): the schedule starts now.
        subscription.retry_count = 0
        subscription.next_retry_at = retry_at(at, 0, config.dunning_days)
        if subscription.next_retry_at is None and subscription.status is SubscriptionStatus.PAST_DUE:
            _exhausted(uow, subscription, config, tally)


def _reset(subscription: Subscription) -> None:
    subscription.retry_count = 0
    subscription.last_retry_at = None
    subscription.next_retry_at = None


def _exhausted(uow: MoneyMove, subscription: Subscription, config: RunConfig, tally: Tally) -> None:
    subscription.next_retry_at = None
    move(uow, subscription, SubscriptionStatus.UNPAID)
    if config.cancel_when_exhausted:
        subscription.cancel_reason = "Canceled after the last payment retry failed."
        move(uow, subscription, SubscriptionStatus.CANCELED)
        tally.canceled += 1


async def retry(uow: MoneyMove, subscription: Subscription, config: RunConfig, tally: Tally) -> None:
    """A dunning retry at ``uow.now``: every OPEN invoice of the subscription charged again (a
    pending payment is reconciled with its own key instead), counted on the invoice and the
    subscription."""
    session, at = uow.session, uow.now
    invoices = await open_invoices(session, subscription)
    outcomes: list[Outcome] = []
    for invoice in invoices:
        pending = await session.scalar(
            select(Payment).where(Payment.invoice_id == invoice.id, Payment.status == PaymentStatus.PENDING)
            .order_by(Payment.created_at).limit(1)
        )
        if pending is not None:
            outcomes.append(await _reconcile(uow, pending))
            continue
        invoice.retry_count += 1
        invoice.last_retry_at = at
        outcomes.append(await collect(uow, invoice, attempt=invoice.retry_count))
    first_failure = min((invoice.finalized_at or invoice.created_at for invoice in invoices), default=at)
    subscription.retry_count += 1
    subscription.last_retry_at = at
    subscription.updated_at = at
    if all(outcome is Outcome.PAID for outcome in outcomes):
        tally.paid += len(outcomes)
        _reset(subscription)
        move(uow, subscription, SubscriptionStatus.ACTIVE)
        return
    await settle(uow, subscription, [o for o in outcomes if o is not Outcome.PAID], config, tally, new_invoice=False)
    tally.paid += sum(outcome is Outcome.PAID for outcome in outcomes)
    subscription.next_retry_at = retry_at(first_failure, subscription.retry_count, config.dunning_days)
    if subscription.next_retry_at is None and subscription.status is SubscriptionStatus.PAST_DUE:
        _exhausted(uow, subscription, config, tally)


async def _reconcile(uow: MoneyMove, pending: Payment) -> Outcome:
    """A PENDING payment asked about again with its own key; still PENDING when the gateway cannot say."""
    gateway = uow.available_gateway(pending.gateway)
    if gateway is None:
        return Outcome.PENDING
    try:
        return outcome_of(await reconcile_payment(uow.session, pending, gateway, uow.now))
    except (GatewayError, LookupError, ValueError):
        return Outcome.PENDING
