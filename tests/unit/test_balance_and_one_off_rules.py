"""Pure rules of issue 21's account balance ledger and one-off charges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_graphql.domain.credit_balance import CreditBalanceError, next_entry
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.invoices import InvoiceLineKind
from billing_graphql.domain.one_off import CollectMethod, days_until_due, one_off_item


@given(st.lists(st.integers(min_value=-10**9, max_value=10**9), max_size=40))
def test_the_ledger_balance_is_the_sum_of_its_entries_and_never_negative(amounts):
    balance, held, written = 0, None, []
    for amount in amounts:
        try:
            entry = next_entry(balance, held, amount, "IDR")
        except CreditBalanceError:
            assert amount == 0 or balance + amount < 0
            continue
        assert entry.balance_before == balance and entry.balance_after == balance + amount >= 0
        written.append(entry.amount)
        balance, held = entry.balance_after, entry.currency
    assert balance == sum(written)


def test_credit_is_held_in_one_currency_until_it_is_spent():
    with pytest.raises(CreditBalanceError):
        next_entry(1000, "IDR", 500, "USD")
    assert next_entry(0, "IDR", 500, "USD").currency == "USD"  # at zero another currency may start


def test_an_item_bills_amount_times_quantity_as_a_one_off_line():
    item = one_off_item("  Setup fee ", 250000, 3)
    line = item.line()
    assert (item.description, item.amount) == ("Setup fee", 750000)
    assert (line.kind, line.quantity, line.unit_amount, line.amount) == (
        InvoiceLineKind.ONE_OFF, Decimal(3), Decimal(250000), 750000)


@pytest.mark.parametrize(("description", "amount", "quantity", "field"), [
    ("", 100, 1, "items.0.description"), ("x", 0, 1, "items.0.amount"), ("x", -1, 1, "items.0.amount"),
    ("x", 100, 0, "items.0.quantity"), ("x", 100, 10_001, "items.0.quantity"), ("x", 10**15, 2, "items.0.amount"),
])
def test_bad_items_name_their_field(description, amount, quantity, field):
    with pytest.raises(BillingError) as raised:
        one_off_item(description, amount, quantity, field_prefix="items.0.")
    assert raised.value.field == field


def test_days_until_due():
    assert days_until_due(CollectMethod.CHARGE_NOW, None) == 0
    assert days_until_due(CollectMethod.SEND, None) == 30
    assert days_until_due(CollectMethod.SEND, 365) == 365
    for collect, days in ((CollectMethod.SEND, 0), (CollectMethod.SEND, 366), (CollectMethod.CHARGE_NOW, 7)):
        with pytest.raises(BillingError):
            days_until_due(collect, days)
