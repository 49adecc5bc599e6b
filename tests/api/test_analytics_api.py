"""`analytics` over HTTP: who may ask, what bad input gets, how it renders, and that its statement
count does not grow with subscriptions or months (the figures are tested in
tests/services/test_analytics_worked_example.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analytics_factories import seed_history
from tests.helpers import count_statements
from tests.services.test_analytics_worked_example import build

OPERATION = (Path(__file__).resolve().parents[2] / "queries" / "admin" / "Analytics.graphql").read_text()


def variables(first: str = "2026-01-01", last: str = "2026-03-31", currency: str = "USD") -> dict[str, str]:
    return {"from": first, "to": last, "currency": currency}


async def test_the_worked_example_renders_as_money_and_decimal_strings(api, db, keys, settings):
    await build(db, settings)
    data = (await api.ok(OPERATION, variables(), token=keys.super_admin))["analytics"]
    assert data["mrr"] == {"amount": "68.33", "currency": "USD", "formatted": "$68.33"}
    assert data["arr"] == {"amount": "819.96", "currency": "USD"}
    assert data["outstanding"]["amount"] == "10.00" and data["failedPaymentsRate"] == "0.3333"
    assert {row["status"]: row["count"] for row in data["byStatus"]} == {
        "TRIALING": 0, "ACTIVE": 4, "PAST_DUE": 1, "UNPAID": 0, "CANCELED": 2}
    assert [(row["plan"]["name"], row["subscriptions"], row["mrr"]["amount"]) for row in data["byPlan"]] == [
        ("Basic", 3, "18.33"), ("Pro", 1, "30.00"), ("Starter", 1, "20.00")]
    january = data["months"][0]
    assert january == {
        "month": "2026-01", "mrr": {"amount": "95.00", "currency": "USD"}, "arr": {"amount": "1140.00", "currency": "USD"},
        "newSubscriptions": 3, "churnedSubscriptions": 1, "churnRate": "0.5000", "newMrr": {"amount": "10.00"},
        "expansionMrr": {"amount": "20.00"}, "contractionMrr": {"amount": "0.00"}, "churnedMrr": {"amount": "0.00"},
        "netRevenue": {"amount": "20.32"}, "arpu": {"amount": "31.67"}, "trialConversions": 0,
        "uncollectible": {"amount": "0.00"},
    }
    assert data["months"][1]["netRevenue"]["amount"] == "-15.00"


@pytest.mark.parametrize("role", ["owner", "admin", "member", "partner"])
async def test_only_super_admins_see_analytics(api, keys, role):
    result = await api.post(OPERATION, variables(), token=getattr(keys, role))
    assert result["data"] == {"analytics": None}
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_anonymous_callers_are_refused(api):
    result = await api.post(OPERATION, variables())
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("bad,message", [
    (variables(currency="XYZ"), "Unknown currency"),
    (variables(first="2000-01-01", last="2026-01-01"), "at most 120 months"),
    (variables(first="2026-03-01", last="2026-01-31"), "'from' (2026-03-01) is after 'to' (2026-01-31)"),
    (variables(first="2026-01-01", last="9999-12-31"), "'to' must be before 9999-12-31"),
])
async def test_bad_input_is_a_clear_client_error(api, keys, bad, message):
    result = await api.post(OPERATION, bad, token=keys.super_admin)
    assert result["data"] == {"analytics": None}
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in result["errors"][0]["message"]


async def test_control_characters_are_refused_where_input_enters(api, keys):
    result = await api.post(OPERATION, variables(currency="US\x00D"), token=keys.super_admin)
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "currency"}


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", 20260101])
async def test_a_date_that_is_not_one_is_refused_before_running(api, keys, value):
    result = await api.post(OPERATION, {**variables(), "from": value}, token=keys.super_admin)
    assert result.get("data") is None and result["errors"]


async def test_a_future_range_and_an_unused_currency_give_zeros(api, keys):
    data = (await api.ok(OPERATION, variables("2099-01-01", "2099-03-31"), token=keys.super_admin))["analytics"]
    assert data["months"] == [] and data["mrr"]["amount"] == "0.00" and data["failedPaymentsRate"] == "0.0000"
    data = (await api.ok(OPERATION, variables(currency="EUR"), token=keys.super_admin))["analytics"]
    assert [m["mrr"]["amount"] for m in data["months"]] == ["0.00", "0.00", "0.00"]
    assert data["byPlan"] == [] and all(row["count"] == 0 for row in data["byStatus"])


async def test_statements_do_not_grow_with_subscriptions_or_months(api, db, keys):
    await api.ok("{ clock { now } }", token=keys.super_admin)  # the key's first use writes last_used_at
    await seed_history(db, 20, months=1)
    one_month = variables("2025-01-01", "2025-01-31")
    with count_statements(db) as small:
        data = (await api.ok(OPERATION, one_month, token=keys.super_admin))["analytics"]
    assert len(data["months"]) == 1 and data["months"][0]["newSubscriptions"] == 20

    await seed_history(db, 1980, months=12)
    with count_statements(db) as large:
        data = (await api.ok(OPERATION, variables("2025-01-01", "2025-12-31"), token=keys.super_admin))["analytics"]
    assert len(data["months"]) == 12
    # Every subscription started in 2025 and is counted once as new.
    assert sum(month["newSubscriptions"] for month in data["months"]) == 2000
    # The key; the report's read (its four statements in one); the answer's statement (the SQL tier's).
    assert large.count == small.count == 3, large.statements
