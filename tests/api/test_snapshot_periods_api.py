"""Partners see the month tenants see (issue 18, item 8): without ``month`` usageSnapshots shows
the billing period in force, as ``usage`` does; with ``month: "YYYY-MM"`` the billing period that
starts in that month; each snapshot carries ``periodStart`` and ``periodEnd``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.api.test_partner_access import RECORD, grant, partner_key_id
from tests.helpers import test_settings
from tests.services.billing_run_helpers import subscribed_on_test_clock

T0 = datetime(2026, 1, 15, 9, tzinfo=UTC)  # the anchor: billing months Jan 15 -> Feb 15 -> Mar 15
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
USAGE = "{ usage { usageMonth messagesThisMonth } }"
SNAPSHOTS = """query($ids: [ID!], $month: String) { usageSnapshots(organizationIds: $ids, month: $month) {
  edges { node { month periodStart periodEnd metrics { metric { code } used } } } } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


async def snapshot(api, keys, month=None) -> dict:
    data = await api.ok(SNAPSHOTS, {"ids": [keys.organization_gid], "month": month}, token=keys.partner)
    node = data["usageSnapshots"]["edges"][0]["node"]
    messages = next((item["used"] for item in node.pop("metrics") if item["metric"]["code"] == "messages"), 0)
    return {**node, "messages": messages}


async def test_snapshots_show_the_billing_month_usage_shows(db, api, keys, settings):
    await subscribed_on_test_clock(db, keys.organization_id, settings, T0, limits={"messages": 1000})
    assert (await grant(api, keys, await partner_key_id(db), keys.organization_id))["errors"] == []
    await api.ok(ADVANCE, {"to": "2026-02-03T12:00:00Z"}, token=keys.super_admin)
    recorded = await api.ok(RECORD, {"input": {"events": [
        {"metric": "messages", "quantity": 42, "timestamp": "2026-02-03T12:00:00Z", "idempotencyKey": "k1"},
    ]}}, token=keys.owner)
    assert recorded["recordUsage"]["accepted"] == 1

    usage = (await api.ok(USAGE, token=keys.owner))["usage"]
    assert usage == {"usageMonth": "2026-01", "messagesThisMonth": 42}
    in_force = {"month": "2026-01", "periodStart": "2026-01-15T09:00:00Z", "periodEnd": "2026-02-15T09:00:00Z",
                "messages": 42}
    assert await snapshot(api, keys) == in_force  # the month usage shows, not the calendar month
    assert await snapshot(api, keys, "2026-01") == in_force  # the billing month that starts in January
    assert await snapshot(api, keys, "2026-02") == {
        "month": "2026-02", "periodStart": "2026-02-15T09:00:00Z", "periodEnd": "2026-03-15T09:00:00Z",
        "messages": 0}
    bad = await api.post(SNAPSHOTS, {"ids": [keys.organization_gid], "month": "2026-13"}, token=keys.partner)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_without_a_subscription_snapshots_show_the_calendar_month(db, api, keys, settings):
    from billing_graphql.db.models import TestClock

    async with db.write() as session:
        session.add(TestClock(id=1, now=datetime(2026, 2, 3, 12, tzinfo=UTC)))
    assert (await grant(api, keys, await partner_key_id(db), keys.organization_id))["errors"] == []
    assert await snapshot(api, keys) == {"month": "2026-02", "periodStart": "2026-02-01T00:00:00Z",
                                         "periodEnd": "2026-03-01T00:00:00Z", "messages": 0}
