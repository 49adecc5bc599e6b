"""The decision of a plan change (DESIGN.md section 3, ``changePlan``), as one pure function.

``decide_plan_change`` takes what the service loaded (the subscription's plan, period, status,
schedule and cap; the plan and period asked for; what the change costs) and answers what to
do, once: refuse it (SAME_PLAN, SPENDING_CAP_TOO_LOW, PAYMENT_REQUIRED), schedule it or clear the
schedule, or apply it now, and with which money:

- during a trial: nothing is billed (a zero preview);
- otherwise a prorated change (``domain.proration``): the credit and charge lines priced once
  (discount before tax, tax, then account credit on the total). A positive total is an invoice
  to finalize and charge, which needs a payment method when something is due; a negative one
  is account credit, tax included; zero bills nothing;
- a change of billing period starts a new period now (the new price for the whole of it);
- the period's usage so far is billed with it, at the current plan's charges (USAGE lines).

The service applies the decision: it writes the rows, the invoice and its charge, the credit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.invoices import (
    Discount,
    InvoiceDraft,
    LineDraft,
    Totals,
    invoice_from_totals,
    price,
    proration_lines,
)
from billing_graphql.domain.money import Money
from billing_graphql.domain.periods import BillingPeriod, Period, add_months
from billing_graphql.domain.proration import Effective, cap_too_low, prorate
from billing_graphql.domain.tax import TaxRule


class ChangeAction(enum.Enum):
    APPLY_NOW = "APPLY_NOW"  # the plan or period changes now
    SCHEDULE = "SCHEDULE"  # the change waits for the period's end
    CLEAR_SCHEDULE = "CLEAR_SCHEDULE"  # scheduling the current plan and period drops the schedule
    CAP_ONLY = "CAP_ONLY"  # only the spending cap changes


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """A plan (by id and name) on a billing period, with its recurring total for that period."""

    plan_id: object
    name: str
    billing_period: BillingPeriod
    recurring_total: int

    @property
    def description(self) -> str:
        label = "monthly" if self.billing_period is BillingPeriod.MONTHLY else "annual"
        return f"{self.name} ({label})"

    @property
    def detail(self) -> dict:
        """The description as structure (domain.invoices.LineDraft.detail)."""
        return {"plan": self.name, "period": self.billing_period.value}


@dataclass(frozen=True, slots=True)
class PlanChangeInput:
    """Everything the decision reads, as plain values."""

    current: PlanTerms  # at the billed agent count
    target: PlanTerms  # at the current agent count
    effective: Effective
    trialing: bool
    period: Period  # the current period
    now: datetime
    currency: str
    pending: tuple[object, BillingPeriod | None] = (None, None)  # the scheduled plan id and period
    cap: int | None = None  # the spending cap asked for (minor units)
    current_cap: int | None = None
    minimum_cap: int = 0  # what the current seats cost on the target plan
    discount: Discount | None = None  # a coupon still in effect (PERCENTAGE only for prorations)
    tax_rule: TaxRule | None = None
    account_credit: int = 0  # usable on an invoice in ``currency``
    has_payment_method: bool = False
    trial_ends: datetime | None = None
    dry_run: bool = False  # a preview: priced, but it needs no payment method
    # The period's usage so far at the current plan's charges (USAGE lines), billed with the change.
    usage_lines: tuple[LineDraft, ...] = ()
    pending_lines: tuple[LineDraft, ...] = ()  # one-off items waiting for the next invoice


@dataclass(frozen=True, slots=True)
class ChangeBill:
    """The money of a prorated change, priced once: its lines and totals, and either the invoice
    to charge or the account credit to add (tax included), or neither."""

    lines: tuple[LineDraft, ...]
    totals: Totals
    invoice: InvoiceDraft | None
    credit: int

    @property
    def amount_due(self) -> int:
        return self.invoice.amount_due if self.invoice is not None else 0


@dataclass(frozen=True, slots=True)
class PlanChangeDecision:
    action: ChangeAction
    restart_period: bool = False
    new_period_end: datetime | None = None
    bill: ChangeBill | None = None  # a prorated change of a paid period (None during a trial)
    trial_message: str | None = None  # a change during a trial: why nothing is billed now

    @property
    def plan_changes_now(self) -> bool:
        return self.action is ChangeAction.APPLY_NOW


def price_change(
    *, old_total: int, new_total: int, period: Period, now: datetime, restart_period: bool,
    new_period_end: datetime, old_description: str, new_description: str, currency: str,
    discount: Discount | None, tax_rule: TaxRule | None, account_credit: int,
    usage_lines: tuple[LineDraft, ...] = (),
    pending_lines: tuple[LineDraft, ...] = (),
    old_detail: dict | None = None,
    new_detail: dict | None = None,
) -> ChangeBill:
    """Prorate from ``old_total`` to ``new_total`` at ``now`` and price the lines once (with the
    period's ``usage_lines`` so far, billed in arrears with the change). A change that bills (a
    positive total) also bills ``pending_lines`` (one-off items waiting for the next invoice); a
    change that credits leaves them waiting."""
    proration = prorate(old_total, new_total, period, now, restart_period=restart_period)
    lines = proration_lines(proration, old_description=old_description, new_description=new_description,
                            at=now, period_end=period.end, new_period_end=new_period_end, old_detail=old_detail,
                            new_detail=new_detail)
    lines += list(usage_lines)
    totals = price(currency, lines, discount=discount, tax_rule=tax_rule)
    if totals.total > 0 and pending_lines:
        lines = [*lines, *pending_lines]
        totals = price(currency, lines, discount=discount, tax_rule=tax_rule)
    if totals.total > 0:
        invoice = invoice_from_totals(lines, totals, account_credit=account_credit)
        return ChangeBill(tuple(lines), totals, invoice, 0)
    return ChangeBill(tuple(lines), totals, None, -totals.total)


def payment_required() -> BillingError:
    return BillingError(BillingErrorCode.PAYMENT_REQUIRED,
                        "A default payment method is needed to pay for this; add one first.", field="paymentMethodId")


def require_payment(bill: ChangeBill | None, has_payment_method: bool) -> None:
    """PAYMENT_REQUIRED when the change leaves something due and there is nothing to charge."""
    if bill is not None and bill.amount_due > 0 and not has_payment_method:
        raise payment_required()


def same_plan(*, scheduled: bool) -> BillingError:
    if scheduled:
        return BillingError(BillingErrorCode.SAME_PLAN, "That change is already scheduled for the period's end.",
                            field="planId")
    return BillingError(BillingErrorCode.SAME_PLAN, "The subscription is already on that plan and period.",
                        field="planId")


def spending_cap_too_low(minimum: int, currency: str) -> BillingError:
    return BillingError(
        BillingErrorCode.SPENDING_CAP_TOO_LOW,
        f"The spending cap must cover the current seats: at least {Money(minimum, currency).format()} per period.",
        field="spendingCap",
        minimum_required_cap=minimum,
        currency=currency,
    )


def decide_plan_change(change: PlanChangeInput) -> PlanChangeDecision:
    """What a plan change does (see the module's docstring); raises the business errors."""
    current, target = change.current, change.target
    if cap_too_low(change.cap, change.minimum_cap):
        raise spending_cap_too_low(change.minimum_cap, change.currency)
    plan_changes = (target.plan_id, target.billing_period) != (current.plan_id, current.billing_period)
    cap_changes = change.cap is not None and change.cap != change.current_cap
    pending_plan, pending_period = change.pending
    scheduled = pending_plan is not None or pending_period is not None
    if change.effective is Effective.PERIOD_END:
        already = (pending_plan, pending_period) == (target.plan_id, target.billing_period)
        if not cap_changes and ((not plan_changes and not scheduled) or (plan_changes and already)):
            raise same_plan(scheduled=already)
        if plan_changes:
            return PlanChangeDecision(ChangeAction.SCHEDULE)
        return PlanChangeDecision(ChangeAction.CLEAR_SCHEDULE if scheduled else ChangeAction.CAP_ONLY)
    if not plan_changes:
        if not cap_changes:
            raise same_plan(scheduled=False)
        return PlanChangeDecision(ChangeAction.CAP_ONLY)

    restart = target.billing_period != current.billing_period
    new_period_end = add_months(change.now, target.billing_period.months) if restart else change.period.end
    if change.trialing:
        ends = change.trial_ends or change.period.end
        return PlanChangeDecision(
            ChangeAction.APPLY_NOW, restart_period=restart, new_period_end=new_period_end,
            trial_message=f"No invoice is due until the trial ends on {ends:%Y-%m-%d %H:%M} UTC; the first "
                          f"invoice then bills the {target.name} plan.")
    bill = price_change(
        old_total=current.recurring_total, new_total=target.recurring_total, period=change.period, now=change.now,
        restart_period=restart, new_period_end=new_period_end, old_description=current.description,
        new_description=target.description, old_detail=current.detail, new_detail=target.detail,
        currency=change.currency, discount=change.discount,
        tax_rule=change.tax_rule, account_credit=change.account_credit, usage_lines=change.usage_lines,
        pending_lines=change.pending_lines,
    )
    if not change.dry_run:
        require_payment(bill, change.has_payment_method)
    return PlanChangeDecision(ChangeAction.APPLY_NOW, restart_period=restart, new_period_end=new_period_end,
                              bill=bill)
