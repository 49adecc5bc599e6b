"""decide_plan_change: the one decision of a plan change, from plain values (domain.plan_change)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.invoices import Discount, DiscountKind, InvoiceLineKind
from billing_graphql.domain.periods import BillingPeriod, Period
from billing_graphql.domain.plan_change import (
    ChangeAction,
    PlanChangeInput,
    PlanTerms,
    decide_plan_change,
)
from billing_graphql.domain.proration import Effective
from billing_graphql.domain.tax import TaxRule

PPN = TaxRule("PPN", Decimal("0.12"), 11, 12)
APRIL = Period(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
MID_APRIL = datetime(2026, 4, 16, tzinfo=UTC)  # half of April's 30 days left
STARTER = PlanTerms("starter", "Starter", BillingPeriod.MONTHLY, 299000)
GROWTH = PlanTerms("growth", "Growth", BillingPeriod.MONTHLY, 599000)

UPGRADE = PlanChangeInput(current=STARTER, target=GROWTH, effective=Effective.IMMEDIATE, trialing=False,
                          period=APRIL, now=MID_APRIL, currency="IDR", tax_rule=PPN, has_payment_method=True)


def refused(change: PlanChangeInput) -> BillingError:
    with pytest.raises(BillingError) as raised:
        decide_plan_change(change)
    return raised.value


def test_an_upgrade_is_one_invoice_priced_once():
    decision = decide_plan_change(UPGRADE)
    assert decision.action is ChangeAction.APPLY_NOW and not decision.restart_period
    assert decision.new_period_end == APRIL.end
    bill = decision.bill
    # credit 149,500 for Starter's half month, charge 299,500 for Growth's: net 150,000, PPN 16,500
    assert [(line.kind, line.amount) for line in bill.lines] == [
        (InvoiceLineKind.PRORATION_CREDIT, -149500), (InvoiceLineKind.PRORATION_CHARGE, 299500)]
    assert (bill.invoice.subtotal, bill.invoice.tax, bill.invoice.total, bill.amount_due) == (
        150000, 16500, 166500, 166500)
    assert bill.credit == 0 and bill.invoice.total == bill.totals.total


def test_account_credit_lowers_what_is_due_and_a_covered_change_needs_no_card():
    decision = decide_plan_change(replace(UPGRADE, account_credit=200000, has_payment_method=False))
    assert (decision.bill.invoice.credit_applied, decision.bill.amount_due) == (166500, 0)


def test_a_downgrade_is_credit_with_its_tax():
    decision = decide_plan_change(replace(UPGRADE, current=GROWTH, target=STARTER, has_payment_method=False))
    assert decision.bill.invoice is None and decision.bill.credit == 166500


def test_a_percentage_coupon_comes_off_before_tax():
    decision = decide_plan_change(replace(UPGRADE, discount=Discount(DiscountKind.PERCENTAGE, percent_off=10)))
    assert (decision.bill.invoice.discount, decision.bill.invoice.tax, decision.bill.invoice.total) == (
        15000, 14850, 149850)


def test_something_due_without_a_payment_method_is_payment_required_except_in_a_preview():
    error = refused(replace(UPGRADE, has_payment_method=False))
    assert (error.code, error.field) == (BillingErrorCode.PAYMENT_REQUIRED, "paymentMethodId")
    preview = decide_plan_change(replace(UPGRADE, has_payment_method=False, dry_run=True))
    assert preview.bill.amount_due == 166500


def test_a_change_of_period_starts_a_new_period_now():
    annual = replace(GROWTH, billing_period=BillingPeriod.ANNUAL, recurring_total=5990000)
    decision = decide_plan_change(replace(UPGRADE, target=annual))
    assert decision.restart_period and decision.new_period_end == datetime(2027, 4, 16, tzinfo=UTC)
    assert decision.bill.lines[-1].amount == 5990000  # the whole new period


def test_during_a_trial_the_plan_changes_and_nothing_is_billed():
    decision = decide_plan_change(replace(UPGRADE, trialing=True, has_payment_method=False,
                                          trial_ends=datetime(2026, 4, 20, tzinfo=UTC)))
    assert decision.action is ChangeAction.APPLY_NOW and decision.bill is None
    assert "2026-04-20 00:00 UTC" in decision.trial_message and "Growth" in decision.trial_message


def test_same_plan_and_schedules():
    assert refused(replace(UPGRADE, target=STARTER)).code is BillingErrorCode.SAME_PLAN
    later = replace(UPGRADE, effective=Effective.PERIOD_END)
    assert decide_plan_change(later).action is ChangeAction.SCHEDULE
    assert decide_plan_change(later).bill is None  # nothing is billed until the renewal
    already = refused(replace(later, pending=("growth", BillingPeriod.MONTHLY)))
    assert already.code is BillingErrorCode.SAME_PLAN and "already scheduled" in already.message
    clear = replace(later, target=STARTER, pending=("growth", BillingPeriod.MONTHLY))
    assert decide_plan_change(clear).action is ChangeAction.CLEAR_SCHEDULE
    assert refused(replace(later, target=STARTER)).code is BillingErrorCode.SAME_PLAN


def test_the_spending_cap():
    assert decide_plan_change(replace(UPGRADE, target=STARTER, cap=500000)).action is ChangeAction.CAP_ONLY
    assert refused(replace(UPGRADE, target=STARTER, cap=500000, current_cap=500000)).code is BillingErrorCode.SAME_PLAN
    low = refused(replace(UPGRADE, cap=100000, minimum_cap=200000))
    assert (low.code, low.field, low.details["minimum_required_cap"]) == (
        BillingErrorCode.SPENDING_CAP_TOO_LOW, "spendingCap", 200000)
