"""Refund rules: amounts, allocation over payments, invoice status (property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.refunds import allocate_refund, refund_amount, status_after_refund
from billing_graphql.domain.status import InvoiceStatus

payments = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=6)


@given(payments, st.data())
def test_allocation_covers_the_amount_and_never_exceeds_a_payment(available, data):
    total = sum(available)
    if total == 0:
        return
    amount = data.draw(st.integers(min_value=1, max_value=total))
    parts = allocate_refund(list(enumerate(available)), amount)
    assert sum(part for _, part in parts) == amount
    for index, part in parts:
        assert 0 < part <= available[index]
    assert len({index for index, _ in parts}) == len(parts)


@given(payments, st.integers(min_value=1, max_value=10**6))
def test_allocation_beyond_what_was_paid_is_refused(available, extra):
    with pytest.raises(BillingError) as error:
        allocate_refund(list(enumerate(available)), sum(available) + extra)
    assert error.value.code is BillingErrorCode.NOT_REFUNDABLE


def test_allocation_takes_payments_in_the_order_given():
    assert allocate_refund([("newest", 300), ("older", 500)], 400) == [("newest", 300), ("older", 100)]
    assert allocate_refund([("newest", 0), ("older", 500)], 400) == [("older", 400)]


@given(st.integers(min_value=1, max_value=10**12), st.data())
def test_refunds_never_exceed_what_was_paid(paid, data):
    refunded = data.draw(st.integers(min_value=0, max_value=paid))
    requested = data.draw(st.none() | st.integers(min_value=-10, max_value=paid * 2))
    try:
        amount = refund_amount(requested, amount_paid=paid, amount_refunded=refunded)
    except BillingError as error:
        if refunded == paid:
            assert error.code is BillingErrorCode.NOT_REFUNDABLE
        else:
            assert error.code is BillingErrorCode.REFUND_EXCEEDS_PAID
            assert requested is not None and (requested <= 0 or requested > paid - refunded)
        return
    assert 0 < amount <= paid - refunded
    assert amount == (paid - refunded if requested is None else requested)
    assert status_after_refund(amount_paid=paid, amount_refunded=refunded + amount) in (
        InvoiceStatus.PARTIALLY_REFUNDED,
        InvoiceStatus.REFUNDED,
    )


@given(st.integers(min_value=1, max_value=10**12), st.data())
def test_status_follows_the_refunded_amount(paid, data):
    refunded = data.draw(st.integers(min_value=0, max_value=paid))
    status = status_after_refund(amount_paid=paid, amount_refunded=refunded)
    if refunded == 0:
        assert status is InvoiceStatus.PAID
    elif refunded == paid:
        assert status is InvoiceStatus.REFUNDED
    else:
        assert status is InvoiceStatus.PARTIALLY_REFUNDED


def test_refunded_beyond_paid_is_a_programming_error():
    with pytest.raises(ValueError):
        status_after_refund(amount_paid=100, amount_refunded=101)
