"""Proration to the second: worked examples by hand and properties (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.invoices import InvoiceLineKind, build_invoice, price, proration_lines
from billing_graphql.domain.periods import BillingPeriod, Period, period_at
from billing_graphql.domain.proration import (
    AddonPrice,
    PlanPrice,
    Recurring,
    RecurringKind,
    prorate,
    remaining_fraction,
    round_half_up,
)
from billing_graphql.domain.tax import TaxRule

PPN = TaxRule("PPN", Decimal("0.12"), 11, 12)
STARTER = PlanPrice("Starter", "IDR", 299000, 2990000, 50000, 2)
GROWTH = PlanPrice("Growth", "IDR", 599000, 5990000, 45000, 5)
APRIL = Period(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))  # 30 days


def test_worked_example_upgrade_halfway_through_30_days_idr():
    # April 2026 has 30 days = 2,592,000 s; at April 16 00:00 there are 15 days = 1,296,000 s left.
    at = datetime(2026, 4, 16, tzinfo=UTC)
    proration = prorate(299000, 599000, APRIL, at)
    assert proration.fraction == Fraction(1, 2)
    # credit = 299000 x 1/2 = 149500; charge = 599000 x 1/2 = 299500; net = 150000
    assert (proration.credit, proration.charge, proration.net) == (149500, 299500, 150000)
    lines = proration_lines(
        proration, old_description="Starter (monthly)", new_description="Growth (monthly)",
        at=at, period_end=APRIL.end, new_period_end=APRIL.end,
    )
    assert [(line.kind, line.amount) for line in lines] == [
        (InvoiceLineKind.PRORATION_CREDIT, -149500),
        (InvoiceLineKind.PRORATION_CHARGE, 299500),
    ]
    invoice = build_invoice("IDR", lines, discount=None, tax_rule=PPN, account_credit=0)
    # tax = 150000 x 12% x 11/12 = 150000 x 0.11 = 16500; total = 150000 + 16500 = 166500
    assert (invoice.subtotal, invoice.discount, invoice.tax, invoice.total) == (150000, 0, 16500, 166500)
    assert invoice.amount_due == 166500


def test_worked_example_downgrade_becomes_credit_with_its_tax():
    # 599000 -> 299000 at April 11 00:00: 20 of 30 days left, fraction 2/3.
    at = datetime(2026, 4, 11, tzinfo=UTC)
    proration = prorate(599000, 299000, APRIL, at)
    assert proration.fraction == Fraction(2, 3)
    # credit = 599000 x 2/3 = 399333.33 -> 399333; charge = 299000 x 2/3 = 199333.33 -> 199333
    assert (proration.credit, proration.charge, proration.net) == (399333, 199333, -200000)
    lines = proration_lines(proration, old_description="Growth", new_description="Starter", at=at,
                            period_end=APRIL.end, new_period_end=APRIL.end)
    totals = price("IDR", lines, discount=None, tax_rule=PPN)
    # tax handed back = 200000 x 0.11 = 22000; account credit = 200000 + 22000 = 222000
    assert (totals.subtotal, totals.tax, totals.total) == (-200000, -22000, -222000)
    assert totals.is_credit
    with pytest.raises(ValueError):
        build_invoice("IDR", lines, discount=None, tax_rule=PPN, account_credit=0)


def test_worked_example_seats_and_addons_usd_with_rounding():
    pro = PlanPrice("Pro", "USD", 2900, 29000, 900, 3)
    team = PlanPrice("Team", "USD", 9900, 99000, 700, 10)
    addons = (AddonPrice("Extra channel", 500, 5000), AddonPrice("AI", 200, 2000, per_agent=True))
    old = Recurring(pro, BillingPeriod.MONTHLY, agents=5, addons=addons)
    new = Recurring(team, BillingPeriod.MONTHLY, agents=5, addons=addons)
    # old: 2900 base + 2 agents above 3 x 900 = 1800 + 500 channel + 5 agents x 200 = 1000 -> 6200
    assert [(i.kind, i.quantity, i.amount) for i in old.items()] == [
        (RecurringKind.PLAN, 1, 2900), (RecurringKind.SEATS, 2, 1800),
        (RecurringKind.ADDON, 1, 500), (RecurringKind.ADDON, 5, 1000),
    ]
    assert old.total == 6200
    # new: 9900 base + no agents above 10 + 500 + 1000 -> 11400
    assert new.total == 11400
    january = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))  # 31 days
    proration = prorate(old.total, new.total, january, datetime(2026, 1, 11, tzinfo=UTC))
    assert proration.fraction == Fraction(21, 31)
    # credit = 6200 x 21/31 = 4200 exactly; charge = 11400 x 21/31 = 7722.58 -> 7723; net 3523
    assert (proration.credit, proration.charge, proration.net) == (4200, 7723, 3523)


def test_worked_example_period_change_starts_a_new_period():
    # Starter monthly -> Starter annual halfway through April: credit 149500, charge the whole year.
    proration = prorate(299000, 2990000, APRIL, datetime(2026, 4, 16, tzinfo=UTC), restart_period=True)
    assert (proration.credit, proration.charge, proration.net) == (149500, 2990000, 2840500)
    # tax = 2840500 x 0.11 = 312455; total = 3152955
    totals = price("IDR", [_line(-149500), _line(2990000)], discount=None, tax_rule=PPN)
    assert (totals.tax, totals.total) == (312455, 3152955)


def test_annual_seats_bill_twelve_months():
    recurring = Recurring(STARTER, BillingPeriod.ANNUAL, agents=4)
    # 2990000 annual base + 2 agents above 2 x 50000 x 12 = 1200000
    assert recurring.total == 2990000 + 1200000
    assert recurring.seats_amount == 1200000


def test_negative_agents_are_refused():
    with pytest.raises(ValueError):
        Recurring(STARTER, BillingPeriod.MONTHLY, agents=-1)


def test_fraction_outside_the_period_is_clamped():
    assert remaining_fraction(APRIL, APRIL.start - timedelta(days=3)) == 1
    assert remaining_fraction(APRIL, APRIL.end + timedelta(seconds=1)) == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(Fraction(1, 2), 1), (Fraction(-1, 2), -1), (Fraction(3, 2), 2), (Fraction(49, 100), 0),
     (Fraction(-51, 100), -1), (Fraction(7), 7), (Fraction(0), 0), (Fraction(5, 2), 3)],
)
def test_round_half_up_is_away_from_zero(value, expected):
    assert round_half_up(value) == expected


def _line(amount: int):
    from billing_graphql.domain.invoices import LineDraft

    return LineDraft(InvoiceLineKind.PRORATION_CHARGE, "x", Decimal(1), Decimal(amount), amount)


# ---- properties -----------------------------------------------------------------------------

anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))
periods = st.sampled_from(list(BillingPeriod))
prices = st.integers(min_value=0, max_value=10**12)


@st.composite
def period_and_instant(draw):
    anchor = draw(anchors)
    period = period_at(anchor, draw(periods), draw(st.integers(min_value=0, max_value=30)))
    offset = draw(st.integers(min_value=0, max_value=period.seconds))
    return period, period.start + timedelta(seconds=offset)


@given(prices, prices, period_and_instant())
def test_credit_and_charge_are_within_half_a_minor_unit_of_exact(old, new, period_at_):
    period, at = period_at_
    proration = prorate(old, new, period, at)
    assert abs(proration.credit - old * proration.fraction) <= Fraction(1, 2)
    assert abs(proration.charge - new * proration.fraction) <= Fraction(1, 2)
    # together they never lose or invent more than one minor unit
    assert abs(proration.net - (new - old) * proration.fraction) <= 1
    assert 0 <= proration.fraction <= 1


@given(prices, prices, anchors, periods)
def test_change_at_period_start_charges_the_full_difference(old, new, anchor, billing_period):
    period = period_at(anchor, billing_period, 0)
    proration = prorate(old, new, period, period.start)
    assert (proration.credit, proration.charge, proration.net) == (old, new, new - old)


@given(prices, prices, anchors, periods)
def test_change_at_period_end_charges_nothing(old, new, anchor, billing_period):
    period = period_at(anchor, billing_period, 0)
    proration = prorate(old, new, period, period.end)
    assert (proration.credit, proration.charge, proration.net) == (0, 0, 0)


@given(prices, prices, period_and_instant())
def test_same_change_at_same_instant_gives_same_invoice(old, new, period_at_):
    period, at = period_at_
    first = prorate(old, new, period, at)
    second = prorate(old, new, period, at + timedelta(microseconds=1) - timedelta(microseconds=1))
    assert first == second
    lines = dict(old_description="Old", new_description="New", at=at, period_end=period.end,
                 new_period_end=period.end)
    if first.net >= 0:
        a = build_invoice("IDR", proration_lines(first, **lines), discount=None, tax_rule=PPN, account_credit=7)
        b = build_invoice("IDR", proration_lines(second, **lines), discount=None, tax_rule=PPN, account_credit=7)
        assert a == b


@given(prices, anchors, periods, st.integers(min_value=0, max_value=400 * 86400),
       st.integers(min_value=0, max_value=400 * 86400))
def test_later_changes_never_credit_more(old, anchor, billing_period, a, b):
    period = period_at(anchor, billing_period, 0)
    earlier, later = sorted([period.start + timedelta(seconds=a), period.start + timedelta(seconds=b)])
    assert prorate(old, old, period, earlier).credit >= prorate(old, old, period, later).credit


@given(prices, prices, period_and_instant())
def test_restarting_the_period_charges_the_whole_new_price(old, new, period_at_):
    period, at = period_at_
    proration = prorate(old, new, period, at, restart_period=True)
    assert proration.charge == new
    assert proration.credit == prorate(old, 0, period, at).credit


def test_prices_are_never_negative():
    with pytest.raises(ValueError):
        prorate(-1, 5, APRIL, APRIL.start)
