"""Credit note rules (domain.credit_notes): proportional tax rounded once, never past the tax or the
net left, the last note carrying exactly what is left; outcomes by invoice status; void and
uncollectible transitions; coupon months given back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.credit_notes import (
    CreditNoteOutcome,
    InvoiceCredit,
    check_outcome,
    check_uncollectible,
    check_void,
    coupon_months_given_back,
    credit_amounts,
    line_creditable,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.status import InvoiceStatus

O = CreditNoteOutcome


def paid(total: int, tax: int, credited: int = 0, tax_credited: int = 0) -> InvoiceCredit:
    return InvoiceCredit(status=InvoiceStatus.PAID, total=total, tax=tax, credit_applied=0, amount_paid=total,
                         amount_credited=credited, credited_against_due=0, tax_credited=tax_credited)


def test_the_issue_example():
    figures = credit_amounts(paid(111_000, 11_000), 55_500, O.CREDIT_BALANCE)
    assert (figures.total, figures.tax, figures.subtotal) == (55_500, 5_500, 50_000)


def test_rounded_once_half_up():
    # 1 credited of 111 with 11 tax: 0.099... -> 0; 5 -> 0.495 -> 0; 6 -> 0.59 -> 1
    assert [credit_amounts(paid(111, 11), amount, O.REFUND).tax for amount in (1, 5, 6)] == [0, 0, 1]


@given(st.integers(1, 10**9), st.integers(0, 10**8), st.lists(st.integers(1, 10**9), min_size=1, max_size=30))
def test_notes_never_pass_the_tax_or_the_net_and_a_full_credit_reverses_the_tax_exactly(net, tax, amounts):
    total = net + tax
    credited = tax_credited = 0
    for amount in amounts:
        invoice = paid(total, tax, credited, tax_credited)
        left = total - credited
        if amount > left:
            with pytest.raises(BillingError) as raised:
                credit_amounts(invoice, amount, O.CREDIT_BALANCE)
            assert raised.value.code is BillingErrorCode.CREDIT_EXCEEDS_INVOICE
            amount = left
            if amount == 0:
                break
        figures = credit_amounts(invoice, amount, O.CREDIT_BALANCE)
        assert 0 <= figures.tax <= amount and figures.subtotal >= 0
        credited += figures.total
        tax_credited += figures.tax
        assert tax_credited <= tax and credited - tax_credited <= net
    if credited == total:
        assert tax_credited == tax


def test_reduce_amount_due_is_bounded_by_what_is_due():
    invoice = InvoiceCredit(status=InvoiceStatus.OPEN, total=111_000, tax=11_000, credit_applied=11_000, amount_paid=0,
                            amount_credited=0, credited_against_due=0, tax_credited=0)
    assert invoice.creditable(O.REDUCE_AMOUNT_DUE) == 100_000
    with pytest.raises(BillingError) as raised:
        credit_amounts(invoice, 100_001, O.REDUCE_AMOUNT_DUE)
    assert raised.value.details == {"creditable": 100_000}


@pytest.mark.parametrize(("status", "outcome", "allowed"), [
    (InvoiceStatus.OPEN, O.REDUCE_AMOUNT_DUE, True), (InvoiceStatus.OPEN, O.REFUND, False),
    (InvoiceStatus.OPEN, O.CREDIT_BALANCE, False), (InvoiceStatus.UNCOLLECTIBLE, O.REDUCE_AMOUNT_DUE, True),
    (InvoiceStatus.PAID, O.REFUND, True), (InvoiceStatus.PAID, O.CREDIT_BALANCE, True),
    (InvoiceStatus.PAID, O.REDUCE_AMOUNT_DUE, False), (InvoiceStatus.PARTIALLY_REFUNDED, O.REFUND, True),
    (InvoiceStatus.REFUNDED, O.REFUND, False), (InvoiceStatus.REFUNDED, O.CREDIT_BALANCE, True),
    (InvoiceStatus.DRAFT, O.CREDIT_BALANCE, False), (InvoiceStatus.VOID, O.REDUCE_AMOUNT_DUE, False),
])
def test_outcomes_by_status(status, outcome, allowed):
    if allowed:
        check_outcome(status, outcome)
    else:
        with pytest.raises(BillingError) as raised:
            check_outcome(status, outcome)
        assert raised.value.code is BillingErrorCode.INVALID_TRANSITION


@pytest.mark.parametrize("status", list(InvoiceStatus))
def test_only_open_invoices_are_voided_or_written_off(status):
    for check in (check_void, check_uncollectible):
        if status is InvoiceStatus.OPEN:
            check(status)
        else:
            with pytest.raises(BillingError) as raised:
                check(status)
            assert raised.value.code is BillingErrorCode.INVALID_TRANSITION
    if status is InvoiceStatus.PAID:
        with pytest.raises(BillingError, match="credit note"):
            check_void(status)


def test_a_line_is_credited_with_its_share_of_the_total():
    # 50,000 of a 150,000 subtotal on a 166,500 total: 55,500
    assert line_creditable(50_000, subtotal=150_000, total=166_500, already=0) == 55_500
    assert line_creditable(50_000, subtotal=150_000, total=166_500, already=55_500) == 0
    assert line_creditable(-10_000, subtotal=150_000, total=166_500, already=0) == 0


def test_coupon_months_given_back():
    assert coupon_months_given_back(0, 1, once=True, duration_in_months=None) == 1
    assert coupon_months_given_back(1, 1, once=False, duration_in_months=3) == 2
    assert coupon_months_given_back(2, 12, once=False, duration_in_months=3) == 3
    assert coupon_months_given_back(None, 1, once=False, duration_in_months=None) is None
