"""The prorated immediate cancellation: credit notes for the unused part of the period.

``credit_unused_period`` prices the unused part exactly as a plan change prices its credit side
(``domain.plan_change.price_change`` from the recurring price the subscription is on now, at
its billed agent count, with its add-ons, to nothing): the remaining seconds of the period over
its length, a PERCENTAGE coupon's share off, tax as for a charge, tax included in the amount.
So a change earlier in the period (already prorated then) is not credited twice.

That amount is credited with credit notes (``billing.credit_notes.create_credit_note``) on the
invoices that billed the period (the subscription's invoices ending at the period's end, newest
first), each at most what it still allows:

- a PAID (or PARTIALLY_REFUNDED) invoice: outcome CREDIT_BALANCE (the account balance's ledger gets
  a CREDIT_NOTE entry), or with ``refund`` REFUND of what its payments left to refund (driven
  after the commit) and CREDIT_BALANCE for the rest (what the account balance had paid);
- a REFUNDED invoice: CREDIT_BALANCE (nothing is left to refund), never with ``refund``;
- an OPEN or UNCOLLECTIBLE invoice (still unpaid): REDUCE_AMOUNT_DUE.

Nothing is credited during a trial (nothing was billed), or when no invoice billed the period.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from billing_graphql.db.models import Coupon, Invoice, Plan, Subscription
from billing_graphql.domain.credit_notes import CreditNoteOutcome, CreditNoteReason, InvoiceCredit
from billing_graphql.domain.periods import Period
from billing_graphql.domain.plan_change import price_change
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.billing.credit_notes import IssuedCreditNote, create_credit_note
from billing_graphql.services.billing.invoicing import tax_rule_for
from billing_graphql.services.subscriptions.coupons import discount_of
from billing_graphql.services.subscriptions.pricing import attached_addons, recurring
from billing_graphql.services.unit_of_work import MoneyMove

MEMO = "Unused part of the period: canceled immediately with proration."
_PAID = (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED)
_UNPAID = (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)


async def unused_amount(uow: MoneyMove, subscription: Subscription) -> int:
    """The unused part of the current period, tax included (minor units); 0 during a trial."""
    if subscription.status is SubscriptionStatus.TRIALING:
        return 0
    session, now = uow.session, uow.now
    period = Period(subscription.current_period_start, subscription.current_period_end)
    if not period.start <= now < period.end:
        return 0
    plan = await session.get(Plan, subscription.plan_id)
    prices = recurring(plan, subscription.billing_period, subscription.agent_count,
                       await attached_addons(session, subscription.id))
    coupon = await session.get(Coupon, subscription.coupon_id) if subscription.coupon_id else None
    bill = price_change(
        old_total=prices.total, new_total=0, period=period, now=now, restart_period=False,
        new_period_end=period.end, old_description=plan.name, new_description=plan.name, currency=plan.currency,
        discount=discount_of(coupon, subscription, proration=True),
        tax_rule=await tax_rule_for(session, plan.currency, now), account_credit=0,
    )
    return bill.credit


def _outcomes(status: InvoiceStatus, refund: bool) -> tuple[CreditNoteOutcome, ...]:
    """The outcomes an invoice's credit takes, in order: with ``refund``, what was paid is refunded
    and what the account balance paid (its credit applied) goes back to the balance."""
    if status in _UNPAID:
        return (CreditNoteOutcome.REDUCE_AMOUNT_DUE,)
    if status in _PAID and refund:
        return (CreditNoteOutcome.REFUND, CreditNoteOutcome.CREDIT_BALANCE)
    if status in _PAID or status is InvoiceStatus.REFUNDED:
        return (CreditNoteOutcome.CREDIT_BALANCE,)
    return ()


def _creditable(invoice: Invoice, outcome: CreditNoteOutcome) -> int:
    figures = InvoiceCredit(status=invoice.status, total=invoice.total, tax=invoice.tax,
                            credit_applied=invoice.credit_applied, amount_paid=invoice.amount_paid,
                            amount_credited=invoice.amount_credited, credited_against_due=invoice.credited_against_due,
                            tax_credited=invoice.tax_credited)
    left = figures.creditable(outcome)
    if outcome is CreditNoteOutcome.REFUND:  # a refund is within what was paid and not refunded yet
        left = min(left, invoice.amount_paid - invoice.amount_refunded)
    return left


async def credit_unused_period(uow: MoneyMove, subscription: Subscription, *, refund: bool) -> list[IssuedCreditNote]:
    """Credit notes for the unused part of the period (see the module's docstring), in the unit
    of work; with REFUND outcomes the caller drives their refunds after the commit."""
    amount = await unused_amount(uow, subscription)
    if amount <= 0:
        return []
    invoices: Sequence[Invoice] = (await uow.session.scalars(
        select(Invoice).where(Invoice.subscription_id == subscription.id,
                              Invoice.period_end == subscription.current_period_end)
        .order_by(Invoice.created_at.desc(), Invoice.id.desc()).execution_options(populate_existing=True)
    )).all()
    issued: list[IssuedCreditNote] = []
    for invoice in invoices:
        for outcome in _outcomes(invoice.status, refund):
            part = min(amount, _creditable(invoice, outcome))
            if part <= 0:
                continue
            issued.append(await create_credit_note(uow, invoice, reason=CreditNoteReason.ORDER_CHANGE,
                                                   outcome=outcome, amount=part, memo=MEMO))
            amount -= part
            if amount == 0:
                return issued
    return issued
