"""Tax: rate x base share, discounts before tax, rounded once half up."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.tax import TaxRule, tax_on

PPN = TaxRule("PPN", Decimal("0.12"), 11, 12)


@pytest.mark.parametrize(
    ("taxable", "expected"),
    [
        (150000, 16500),  # 150000 x 0.12 x 11/12 = 16500 exactly
        (299000, 32890),  # 299000 x 0.11 = 32890
        (100, 11),
        (5, 1),  # 0.55 -> 1 (half up)
        (4, 0),  # 0.44 -> 0
        (50, 6),  # 5.5 -> 6
        (-150000, -16500),  # a credit hands back the tax of a charge of its size
        (0, 0),
    ],
)
def test_ppn_is_eleven_percent_effective(taxable, expected):
    assert PPN.tax_on(taxable) == expected


def test_effective_rate():
    assert PPN.effective_rate == Decimal("0.11")
    assert TaxRule("VAT", Decimal("0.2")).effective_rate == Decimal("0.2")
    assert TaxRule("odd", Decimal("0.1"), 1, 3).effective_rate == Decimal("0.0333333333")


def test_no_rule_no_tax():
    assert tax_on(123456, None) == 0


def test_rule_validation():
    with pytest.raises(TypeError):
        TaxRule("x", 0.12)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TaxRule("x", Decimal("-0.1"))
    with pytest.raises(ValueError):
        TaxRule("x", Decimal("0.1"), 0, 12)


@given(st.integers(min_value=0, max_value=10**13))
def test_tax_is_symmetric_and_within_half_a_unit(amount):
    exact = amount * PPN.exact_factor
    assert abs(PPN.tax_on(amount) - exact) <= Decimal("0.5")
    assert PPN.tax_on(-amount) == -PPN.tax_on(amount)
