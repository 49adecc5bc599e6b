"""Dunning over one clock jump (issue 18, item 2): a billing run at T performs every step due at
or before T in order, each at its own instant, so each retry is its own payment attempt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_graphql.gateways import GatewayRegistry
from tests.helpers import test_settings
from tests.services.billing_run_helpers import replace_card, subscribed_on_test_clock

T0 = datetime(2026, 1, 31, 10, tzinfo=UTC)
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }'
STATE = """{ subscription { status retryCount lastRetryAt nextRetryAt }
  invoices(first: 10) { edges { node { periodStart status retryCount
    payments { status createdAt } } } } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


async def _declined_renewal(db, keys, settings) -> None:
    await subscribed_on_test_clock(db, keys.organization_id, settings, T0)
    await replace_card(db, keys.organization_id, "pm_card_declined")


async def _state(api, keys) -> dict:
    data = await api.ok(STATE, token=keys.owner)
    renewal = next(edge["node"] for edge in data["invoices"]["edges"]
                   if edge["node"]["periodStart"] == "2026-02-28T10:00:00Z")
    return {"subscription": data["subscription"], "renewal": renewal}


EXPECTED = {
    "subscription": {"status": "UNPAID", "retryCount": 4, "lastRetryAt": "2026-03-07T10:00:00Z", "nextRetryAt": None},
    "renewal": {"periodStart": "2026-02-28T10:00:00Z", "status": "OPEN", "retryCount": 4, "payments": [
        # the renewal's charge on Feb 28, then retries 1, 3, 5 and 7 days after it: five attempts
        {"status": "FAILED", "createdAt": f"2026-{day}T10:00:00Z"}
        for day in ("02-28", "03-01", "03-03", "03-05", "03-07")]},
}


async def test_one_jump_past_every_retry_makes_every_attempt(db, api, keys, settings):
    await _declined_renewal(db, keys, settings)
    await api.ok(ADVANCE, {"to": "2026-03-10T12:00:00Z"}, token=keys.super_admin)
    state = await _state(api, keys)
    state["renewal"]["payments"].sort(key=lambda payment: payment["createdAt"])
    assert state == EXPECTED


async def test_day_by_day_ends_in_the_same_state(db, api, keys, settings):
    await _declined_renewal(db, keys, settings)
    for day in range(1, 11):
        await api.ok(ADVANCE, {"to": f"2026-03-{day:02d}T12:00:00Z"}, token=keys.super_admin)
    state = await _state(api, keys)
    state["renewal"]["payments"].sort(key=lambda payment: payment["createdAt"])
    assert state == EXPECTED
