"""Invoice totals: discount before tax, credit after tax, and the identities they keep."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.invoices import (
    Discount,
    DiscountKind,
    LineDraft,
    InvoiceLineKind,
    build_invoice,
    price,
)
from billing_graphql.domain.tax import TaxRule

PPN = TaxRule("PPN", Decimal("0.12"), 11, 12)


def line(amount: int, kind: InvoiceLineKind = InvoiceLineKind.PLAN) -> LineDraft:
    return LineDraft(kind, "line", Decimal(1), Decimal(amount), amount)


def test_percentage_coupon_before_tax_then_credit_after_tax():
    # 299000 - 20% (59800) = 239200 taxable; PPN 239200 x 0.11 = 26312; total 265512
    discount = Discount(DiscountKind.PERCENTAGE, percent_off=20)
    invoice = build_invoice("IDR", [line(299000)], discount=discount, tax_rule=PPN, account_credit=100000)
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (299000, 59800, 26312, 265512)
    # the credit is spent after tax: 265512 - 100000 = 165512 due
    assert (invoice.credit_applied, invoice.amount_due) == (100000, 165512)


def test_fixed_coupon_never_above_subtotal_and_credit_never_above_total():
    discount = Discount(DiscountKind.FIXED, amount_off=500000, currency="IDR")
    invoice = build_invoice("IDR", [line(299000)], discount=discount, tax_rule=PPN, account_credit=10**9)
    assert (invoice.discount, invoice.tax, invoice.total, invoice.credit_applied, invoice.amount_due) == (
        299000, 0, 0, 0, 0,
    )


def test_fixed_coupon_in_another_currency_does_not_apply():
    discount = Discount(DiscountKind.FIXED, amount_off=1000, currency="USD")
    assert price("IDR", [line(299000)], discount=discount, tax_rule=None).discount == 0


def test_hundred_percent_coupon():
    discount = Discount(DiscountKind.PERCENTAGE, percent_off=100)
    invoice = build_invoice("IDR", [line(299000)], discount=discount, tax_rule=PPN, account_credit=0)
    assert (invoice.discount, invoice.tax, invoice.total) == (299000, 0, 0)


def test_percentage_rounds_half_up_once():
    # 15% of 2530 = 379.5 -> 380
    assert price("USD", [line(2530)], discount=Discount(DiscountKind.PERCENTAGE, percent_off=15),
                 tax_rule=None).discount == 380


def test_negative_subtotal_is_priced_on_its_magnitude():
    discount = Discount(DiscountKind.PERCENTAGE, percent_off=10)
    totals = price("IDR", [line(-100000, InvoiceLineKind.PRORATION_CREDIT), line(50000)], discount=discount, tax_rule=PPN)
    # magnitude 50000, 10% = 5000, taxable 45000, tax 4950; credit = 49950
    assert (totals.subtotal, totals.discount, totals.tax, totals.total) == (-50000, -5000, -4950, -49950)


@pytest.mark.parametrize(
    "kwargs",
    [dict(kind=DiscountKind.PERCENTAGE, percent_off=0), dict(kind=DiscountKind.PERCENTAGE, percent_off=101),
     dict(kind=DiscountKind.PERCENTAGE), dict(kind=DiscountKind.FIXED, amount_off=0, currency="IDR"),
     dict(kind=DiscountKind.FIXED, amount_off=10)],
)
def test_discount_shape_is_checked(kwargs):
    with pytest.raises(ValueError):
        Discount(**kwargs)


def test_account_credit_is_never_negative():
    with pytest.raises(ValueError):
        build_invoice("IDR", [line(1)], discount=None, tax_rule=None, account_credit=-1)


discounts = st.one_of(
    st.none(),
    st.builds(lambda p: Discount(DiscountKind.PERCENTAGE, percent_off=p), st.integers(1, 100)),
    st.builds(lambda a: Discount(DiscountKind.FIXED, amount_off=a, currency="IDR"), st.integers(1, 10**9)),
)
rules = st.one_of(
    st.none(),
    st.just(PPN),
    st.builds(lambda r, n, d: TaxRule("T", Decimal(r) / 1000, n, d), st.integers(0, 500), st.integers(1, 20),
              st.integers(1, 20)),
)
amounts = st.lists(st.integers(min_value=-10**9, max_value=10**9), min_size=1, max_size=6)


@given(amounts, discounts, rules)
def test_total_is_subtotal_minus_discount_plus_tax(line_amounts, discount, rule):
    totals = price("IDR", [line(a) for a in line_amounts], discount=discount, tax_rule=rule)
    assert totals.subtotal == sum(line_amounts)
    assert totals.total == totals.subtotal - totals.discount + totals.tax
    assert abs(totals.discount) <= abs(totals.subtotal)
    # discount and tax carry the subtotal's sign (a credit hands back its tax)
    assert totals.discount * totals.subtotal >= 0 and totals.tax * totals.subtotal >= 0
    mirrored = price("IDR", [line(-a) for a in line_amounts], discount=discount, tax_rule=rule)
    assert mirrored.total == -totals.total


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=6), discounts, rules,
       st.integers(min_value=0, max_value=10**10))
def test_amount_due_is_total_minus_credit_applied(line_amounts, discount, rule, credit):
    invoice = build_invoice("IDR", [line(a) for a in line_amounts], discount=discount, tax_rule=rule,
                            account_credit=credit)
    assert invoice.total == invoice.subtotal - invoice.discount + invoice.tax
    assert 0 <= invoice.discount <= invoice.subtotal
    assert invoice.credit_applied == min(credit, invoice.total)
    assert invoice.amount_due == invoice.total - invoice.credit_applied >= 0
