"""Pricing a quantity under a charge (domain.charges): worked examples and the issue's properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.charges import (
    Charge,
    ChargeModel,
    Tier,
    amount_minor,
    check_charge,
    check_tiers,
    included_in_period,
    price,
)
from billing_graphql.domain.errors import BillingError

# Rp: 1..1000 at 100, 1001..10000 at 80 (+ 5000 flat), above at 50.
TIERS = (Tier(1000, Decimal(100)), Tier(10000, Decimal(80), Decimal(5000)), Tier(None, Decimal(50)))


def test_standard_bills_units_above_the_included_ones():
    priced = price(Charge(ChargeModel.STANDARD, included_units=1000, unit_amount=Decimal(100)), 1500)
    assert (priced.billable, priced.amount) == (500, 50000)
    assert price(Charge(ChargeModel.STANDARD, included_units=1000, unit_amount=Decimal(100)), 900).amount == 0


def test_no_included_limit_bills_nothing():
    assert price(Charge(ChargeModel.STANDARD, included_units=None, unit_amount=Decimal(100)), 10**6).amount == 0


def test_package_counts_started_packages():
    charge = Charge(ChargeModel.PACKAGE, included_units=0, unit_amount=Decimal(700), package_size=10)
    assert price(charge, 12).amount == 1400  # 12 units in packages of 10: 2 packages
    assert price(charge, 10).amount == 700
    assert price(charge, 0).amount == 0


def test_graduated_worked_example():
    priced = price(Charge(ChargeModel.GRADUATED, included_units=0, tiers=TIERS), 12000)
    # 1000 x 100 + (9000 x 80 + 5000) + 2000 x 50 = 100000 + 725000 + 100000
    assert priced.amount == 925000
    assert [(t.from_unit, t.to_unit, t.units, t.amount) for t in priced.tiers] == [
        (1, 1000, 1000, Decimal(100000)), (1001, 10000, 9000, Decimal(725000)), (10001, None, 2000, Decimal(100000))]


def test_volume_worked_example():
    priced = price(Charge(ChargeModel.VOLUME, included_units=0, tiers=TIERS), 12000)
    assert priced.amount == 12000 * 50
    priced = price(Charge(ChargeModel.VOLUME, included_units=0, tiers=TIERS), 5000)
    assert priced.amount == 5000 * 80 + 5000
    assert [(t.from_unit, t.to_unit, t.units) for t in priced.tiers] == [(1001, 10000, 5000)]


def test_included_units_scale_with_the_months_of_a_period():
    assert included_in_period(1000, 1) == 1000
    assert included_in_period(1000, 12) == 12000
    assert included_in_period(1000, 0) == 1000
    assert included_in_period(None, 12) is None


def test_rounding_happens_once_per_line():
    # Rp 0.4 per unit: 3 units are 1.2 -> 1, not 0 + 0 + 0; half up at .5
    charge = Charge(ChargeModel.STANDARD, included_units=0, unit_amount=Decimal("0.4"))
    assert price(charge, 3).amount == 1
    assert price(charge, 5).amount == 2
    half = Charge(ChargeModel.GRADUATED, included_units=0,
                  tiers=(Tier(1, Decimal("0.25")), Tier(None, Decimal("0.25"))))
    # each tier 0.25 alone would round to 0; the line is 0.5 -> 1
    assert price(half, 2).amount == 1


# ---- properties -----------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw, max_tiers=5):
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), max_size=max_tiers - 1)))
    ups: list[int | None] = [*bounds, None]
    return tuple(Tier(up, draw(amounts), draw(amounts)) for up in ups)


quantities = st.integers(0, 5 * 10**6)
included = st.integers(0, 10**4)


@given(tier_lists(), quantities, included)
def test_graduated_equals_the_sum_over_its_tiers(tiers, quantity, free):
    priced = price(Charge(ChargeModel.GRADUATED, included_units=free, tiers=tiers), quantity)
    assert priced.exact == sum((tier.amount for tier in priced.tiers), Decimal(0))
    assert sum(tier.units for tier in priced.tiers) == priced.billable == max(quantity - free, 0)
    for tier in priced.tiers:
        assert tier.amount == tier.unit_amount * tier.units + tier.flat_amount


@given(amounts, amounts, quantities, included)
def test_volume_and_graduated_agree_with_one_tier(unit, flat, quantity, free):
    tiers = (Tier(None, unit, flat),)
    graduated = price(Charge(ChargeModel.GRADUATED, included_units=free, tiers=tiers), quantity)
    volume = price(Charge(ChargeModel.VOLUME, included_units=free, tiers=tiers), quantity)
    assert graduated.amount == volume.amount and graduated.exact == volume.exact


@st.composite
def monotone_charges(draw):
    model = draw(st.sampled_from([ChargeModel.STANDARD, ChargeModel.GRADUATED, ChargeModel.PACKAGE]))
    free = draw(included)
    if model is ChargeModel.GRADUATED:
        return Charge(model, included_units=free, tiers=draw(tier_lists()))
    if model is ChargeModel.PACKAGE:
        return Charge(model, included_units=free, unit_amount=draw(amounts), package_size=draw(st.integers(1, 1000)))
    return Charge(model, included_units=free, unit_amount=draw(amounts))


@given(monotone_charges(), quantities, st.integers(0, 10**5))
def test_a_price_never_decreases_as_quantity_grows(charge, quantity, more):
    assert price(charge, quantity + more).exact >= price(charge, quantity).exact
    assert price(charge, quantity + more).amount >= price(charge, quantity).amount


@given(amounts, st.integers(1, 1000), quantities)
def test_package_is_a_ceiling(unit, size, quantity):
    priced = price(Charge(ChargeModel.PACKAGE, included_units=0, unit_amount=unit, package_size=size), quantity)
    packages = priced.exact / unit if unit else None
    if packages is not None:
        assert packages == (quantity + size - 1) // size
        assert (packages - 1) * size < quantity <= packages * size or quantity == 0


@given(monotone_charges(), quantities)
def test_the_line_is_its_exact_amount_rounded_once_half_up(charge, quantity):
    priced = price(charge, quantity)
    assert abs(Decimal(priced.amount) - priced.exact) <= Decimal("0.5")
    assert priced.amount == int((priced.exact + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR"))


# ---- checking input -------------------------------------------------------------------------

def test_tiers_must_increase_and_end_unbounded():
    with pytest.raises(BillingError) as error:
        check_tiers((Tier(100, Decimal(1)), Tier(100, Decimal(1)), Tier(None, Decimal(1))), "charges[0].tiers")
    assert error.value.field == "charges[0].tiers[1].upTo"
    with pytest.raises(BillingError) as error:
        check_tiers((Tier(100, Decimal(1)),), "charges[0].tiers")
    assert error.value.field == "charges[0].tiers[0].upTo"
    with pytest.raises(BillingError) as error:
        check_tiers((Tier(None, Decimal(1)), Tier(None, Decimal(1))), "t")
    assert error.value.field == "t[0].upTo"
    with pytest.raises(BillingError) as error:
        check_tiers((), "t")
    assert error.value.field == "t"


def test_model_fields_are_checked():
    with pytest.raises(BillingError) as error:
        check_charge(Charge(ChargeModel.PACKAGE, unit_amount=Decimal(1)), "charges[2]")
    assert error.value.field == "charges[2].packageSize"
    with pytest.raises(BillingError) as error:
        check_charge(Charge(ChargeModel.STANDARD, tiers=(Tier(None, Decimal(1)),)), "charges[0]")
    assert error.value.field == "charges[0].tiers"
    with pytest.raises(BillingError) as error:
        check_charge(Charge(ChargeModel.GRADUATED, unit_amount=Decimal(1), tiers=(Tier(None, Decimal(1)),)), "c")
    assert error.value.field == "c.unitAmount"


def test_amounts_are_non_negative_decimals_of_the_currency():
    assert amount_minor(Decimal("0.0015"), "USD", "f") == Decimal("0.15")
    assert amount_minor(Decimal("150"), "IDR", "f") == Decimal(150)
    for bad in (Decimal("-1"), Decimal("NaN"), Decimal("0.0000001")):
        with pytest.raises(BillingError) as error:
            amount_minor(bad, "IDR", "charges[0].unitAmount")
        assert error.value.field == "charges[0].unitAmount"
