"""From recordUsage to the renewal's overage line (issue 18, item 5 and the one month key):
events land in the billing month ingestion keys them under, the renewal reads the same keys,
and only ``messages`` is priced by ``overageMessagePrice`` (another metric above its limit is
limited, not charged)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import set_overage_price
from tests.helpers import test_settings
from tests.services.billing_run_helpers import subscribed_on_test_clock

T0 = datetime(2026, 1, 31, 10, tzinfo=UTC)  # the anchor: billing months Jan 31 -> Feb 28 -> Mar 31
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted errors { code field } } }"""
INVOICES = """{ invoices(first: 10) { edges { node { periodStart
  lines { kind description quantity unitAmount { amount } amount { amount } } } } } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


def event(key: str, metric: str, quantity: int, at: str) -> dict:
    return {"metric": metric, "quantity": quantity, "timestamp": at, "idempotencyKey": key}


async def test_record_usage_to_the_renewals_overage_line(db, api, keys, settings):
    plan = await subscribed_on_test_clock(db, keys.organization_id, settings, T0,
                                          limits={"messages": 1000, "api_calls": 100})
    await set_overage_price(db, plan.id, 150)  # before the first renewal prices it

    await api.ok(ADVANCE, {"to": "2026-02-28T09:59:59Z"}, token=keys.super_admin)
    recorded = await api.ok(RECORD, {"input": {"events": [
        event("m-jan31", "messages", 700, "2026-01-31T10:00:00Z"),  # the billing month's first instant
        event("m-feb", "messages", 500, "2026-02-28T09:59:59Z"),  # its last second: 1,200 in all
        event("a-feb", "api_calls", 1000, "2026-02-20T00:00:00Z"),  # 900 above its limit
    ]}}, token=keys.owner)
    assert recorded["recordUsage"] == {"accepted": 3, "errors": []}
    await api.ok(ADVANCE, {"to": "2026-02-28T11:00:00Z"}, token=keys.super_admin)  # the renewal at 10:00
    after = await api.ok(RECORD, {"input": {"events": [
        event("m-mar", "messages", 5000, "2026-02-28T10:00:00Z"),  # the next billing month (key 2026-02)
    ]}}, token=keys.owner)
    assert after["recordUsage"] == {"accepted": 1, "errors": []}

    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    renewal = next(node for node in invoices if node["periodStart"] == "2026-02-28T10:00:00Z")
    overage = [line for line in renewal["lines"] if line["kind"] == "USAGE"]
    assert overage == [{"kind": "USAGE", "description": "Messages above the 1,000 included per month",
                        "quantity": "200", "unitAmount": {"amount": "150"}, "amount": {"amount": "30000"}}]

    await api.ok(ADVANCE, {"to": "2026-03-31T11:00:00Z"}, token=keys.super_admin)  # the next renewal
    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    renewal = next(node for node in invoices if node["periodStart"] == "2026-03-31T10:00:00Z")
    overage = [line for line in renewal["lines"] if line["kind"] == "USAGE"]
    assert [(line["quantity"], line["amount"]) for line in overage] == [("4000", {"amount": "600000"})]
