"""Money: exponents, strict parsing, half-up rounding, formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.money import EXPONENTS, Money, exponent, normalize_currency, parse_major, round_minor

currencies = st.sampled_from(sorted(EXPONENTS))


@pytest.mark.parametrize(
    ("currency", "places"),
    [("JPY", 0), ("KRW", 0), ("IDR", 0), ("USD", 2), ("EUR", 2), ("GBP", 2), ("INR", 2), ("SGD", 2),
     ("MYR", 2), ("KWD", 3), ("BHD", 3)],
)
def test_exponent_table(currency, places):
    assert exponent(currency) == places


def test_unknown_currency_is_a_clear_validation_error():
    with pytest.raises(BillingError) as caught:
        exponent("XXX")
    assert caught.value.code is BillingErrorCode.VALIDATION
    assert "XXX" in caught.value.message
    assert normalize_currency(" usd ") == "USD"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("299000", "IDR", 299000), ("19.00", "USD", 1900), ("19.5", "USD", 1950), ("0.001", "KWD", 1),
     ("1000", "JPY", 1000), ("0", "USD", 0), ("-5.25", "EUR", -525)],
)
def test_parse_major(text, currency, minor):
    assert parse_major(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("10.5", "IDR"), ("19.001", "USD"), ("1.0001", "BHD"), ("abc", "USD"), ("1e3", "USD"), ("", "USD"),
     ("1,000", "USD"), (" ", "IDR")],
)
def test_parse_major_rejects_what_does_not_fit(text, currency):
    with pytest.raises(BillingError) as caught:
        parse_major(text, currency, field="basePriceMonthly")
    assert caught.value.code is BillingErrorCode.VALIDATION
    assert caught.value.field == "basePriceMonthly"


@pytest.mark.parametrize(
    ("value", "rounded"),
    [(Decimal("0.5"), 1), (Decimal("1.5"), 2), (Decimal("2.5"), 3), (Decimal("-0.5"), -1),
     (Decimal("0.49999"), 0), (Decimal("16500.0"), 16500)],
)
def test_round_minor_is_half_up(value, rounded):
    assert round_minor(value) == rounded


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        Money(19.99, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("money", "text"),
    [(Money(29900000, "IDR"), "Rp 29,900,000"), (Money(1900, "USD"), "$19.00"), (Money(-1900, "USD"), "-$19.00"),
     (Money(1234, "KWD"), "KWD 1.234"), (Money(500, "JPY"), "¥500")],
)
def test_format(money, text):
    assert money.format() == text


@given(minor=st.integers(min_value=-10**15, max_value=10**15), currency=currencies)
def test_amount_round_trips_through_major_string(minor, currency):
    money = Money(minor, currency)
    assert Money.parse(format(money.amount, "f"), currency) == money
    assert money.amount.as_tuple().exponent == -exponent(currency)


@given(a=st.integers(min_value=-10**12, max_value=10**12), b=st.integers(min_value=-10**12, max_value=10**12),
       currency=currencies)
def test_addition_is_exact(a, b, currency):
    assert (Money(a, currency) + Money(b, currency)).minor == a + b
    assert (Money(a, currency) - Money(b, currency)).minor == a - b


@given(minor=st.integers(min_value=0, max_value=10**12),
       factor=st.decimals(min_value=0, max_value=10, places=6, allow_nan=False))
def test_times_rounds_once_within_half_a_minor_unit(minor, factor):
    exact = Decimal(minor) * factor
    result = Money(minor, "USD").times(factor).minor
    assert abs(Decimal(result) - exact) <= Decimal("0.5")


def test_currencies_do_not_mix():
    with pytest.raises(ValueError):
        Money(1, "USD") + Money(1, "EUR")
