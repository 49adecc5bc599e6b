"""MRR across the seams (issue 18, items 3 and 4), over HTTP.

- A subscription that starts and ends in one month counts in newSubscriptions and
  churnedSubscriptions, and its MRR in newMrr and churnedMrr, also when it is canceled the
  instant it started.
- The billable seat count is the ``agents`` gauge: Subscription.agentCount, usage.agentCount,
  upcomingInvoice's SEATS line and MRR agree at every moment, and a gauge change between
  renewals moves MRR as expansion or contraction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.subscriptions.lifecycle import cancel
from tests.helpers import test_settings
from tests.services.billing_run_helpers import subscribed_on_test_clock

T0 = datetime(2026, 3, 10, 10, tzinfo=UTC)
ANALYTICS = """query($from: Date!, $to: Date!) { analytics(from: $from, to: $to, currency: "IDR") {
  mrr { amount } months { month mrr { amount } newSubscriptions churnedSubscriptions newMrr { amount }
  expansionMrr { amount } contractionMrr { amount } churnedMrr { amount } } } }"""
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted errors { code field } } }"""
SEATS = """{ subscription { agentCount upcomingInvoice { lines { kind quantity amount { amount } } } }
  usage { agentCount } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


async def march(api, keys) -> dict:
    data = (await api.ok(ANALYTICS, {"from": "2026-03-01", "to": "2026-03-31"}, token=keys.super_admin))["analytics"]
    return {"now": data["mrr"]["amount"], **data["months"][0]}


async def test_a_subscription_canceled_the_instant_it_started_is_new_and_churned(db, api, keys, settings):
    await subscribed_on_test_clock(db, keys.organization_id, settings, T0)  # 100,000 a month, paid now
    for name in ("Globex two", "Initech"):
        other = await create_organization(db, None, name=name, external_id=name.lower().replace(" ", "-"), now=T0)
        await subscribed_on_test_clock(db, other.id, settings, T0, clock=False)
    await cancel(db, None, organization_id=keys.organization_id, immediately=True, reason=None, now=T0)
    assert await march(api, keys) == {
        "now": "200000", "month": "2026-03", "mrr": {"amount": "200000"},
        "newSubscriptions": 3, "churnedSubscriptions": 1,
        "newMrr": {"amount": "300000"}, "expansionMrr": {"amount": "0"}, "contractionMrr": {"amount": "0"},
        "churnedMrr": {"amount": "100000"},
    }


async def seats(api, keys) -> dict:
    data = await api.ok(SEATS, token=keys.owner)
    lines = data["subscription"]["upcomingInvoice"]["lines"]
    seat_line = next((line for line in lines if line["kind"] == "SEATS"), None)
    return {"subscription": data["subscription"]["agentCount"], "usage": data["usage"]["agentCount"],
            "upcoming_seats": seat_line and (seat_line["quantity"], seat_line["amount"]["amount"])}


async def test_seats_have_one_truth_and_move_mrr_between_renewals(db, api, keys, settings):
    # Rp 250,000 a month with 1 agent included, Rp 40,000 per agent beyond it.
    await subscribed_on_test_clock(db, keys.organization_id, settings, T0, monthly=250000, per_agent=40000)
    assert await seats(api, keys) == {"subscription": 1, "usage": 1, "upcoming_seats": None}
    await api.ok(ADVANCE, {"to": "2026-03-20T10:00:00Z"}, token=keys.super_admin)
    recorded = await api.ok(RECORD, {"input": {"events": [
        {"metric": "agents", "quantity": 8, "timestamp": "2026-03-20T10:00:00Z", "idempotencyKey": "a8"}]}},
        token=keys.owner)
    assert recorded["recordUsage"] == {"accepted": 1, "errors": []}
    assert await seats(api, keys) == {"subscription": 8, "usage": 8, "upcoming_seats": ("7", "280000")}
    assert await march(api, keys) == {
        "now": "530000", "month": "2026-03", "mrr": {"amount": "530000"},  # 250,000 + 7 x 40,000
        "newSubscriptions": 1, "churnedSubscriptions": 0, "newMrr": {"amount": "250000"},
        "expansionMrr": {"amount": "280000"}, "contractionMrr": {"amount": "0"}, "churnedMrr": {"amount": "0"},
    }
    await api.ok(ADVANCE, {"to": "2026-03-25T10:00:00Z"}, token=keys.super_admin)
    await api.ok(RECORD, {"input": {"events": [
        {"metric": "agents", "quantity": 3, "timestamp": "2026-03-25T10:00:00Z", "idempotencyKey": "a3"}]}},
        token=keys.owner)
    assert await seats(api, keys) == {"subscription": 3, "usage": 3, "upcoming_seats": ("2", "80000")}
    figures = await march(api, keys)
    assert (figures["now"], figures["expansionMrr"], figures["contractionMrr"]) == (
        "330000", {"amount": "280000"}, {"amount": "200000"})
