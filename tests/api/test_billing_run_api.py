"""The billing run over GraphQL: advanceClock renews before it returns, upcomingInvoice matches
the invoice the run then makes, and the admin's PAST_DUE list shows the dunning state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.db.models import TestClock
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import make_payment_method, make_plan, set_agents
from tests.helpers import test_settings

T0 = datetime(2026, 1, 31, 10, tzinfo=UTC)
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }'
UPCOMING = """{ subscription { status currentPeriodEnd upcomingInvoice {
  lines { kind description quantity unitAmount { amount } amount { amount } periodStart periodEnd }
  subtotal { amount } discount { amount } tax { amount } taxName total { amount } creditApplied { amount }
  amountDue { amount } } } }"""
INVOICES = """{ invoices(first: 10) { edges { node { number: invoiceNumber status periodStart
  lines { kind description quantity unitAmount { amount } amount { amount } periodStart periodEnd }
  subtotal { amount } discount { amount } tax { amount } taxName total { amount } creditApplied { amount }
  amountDue { amount } } } } }"""
PAST_DUE = """{ subscriptions(status: PAST_DUE, first: 10) { edges { node { status retryCount lastRetryAt
  nextRetryAt organization { externalId } } } } }"""


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


async def test_advance_clock_renews_and_upcoming_invoice_is_what_gets_billed(db, api, keys, settings):
    async with db.write() as session:
        session.add(TestClock(id=1, now=T0))
    plan = await make_plan(db, name="Team", monthly=250000, per_agent=40000, included_agents=1, trial_days=0)
    await set_agents(db, keys.organization_id, 3)
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    await subscribe(db, None, organization_id=keys.organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None,
                    idempotency_key=None, gateways=GatewayRegistry(settings), now=T0)

    before = (await api.ok(UPCOMING, token=keys.owner))["subscription"]
    assert before["currentPeriodEnd"] == "2026-02-28T10:00:00Z"
    upcoming = before["upcomingInvoice"]
    assert [line["kind"] for line in upcoming["lines"]] == ["PLAN", "SEATS"]
    assert upcoming["total"] == {"amount": "366300"}  # (250,000 + 2 x 40,000) + 11% PPN

    moved = await api.ok(ADVANCE, {"to": "2026-03-01T00:00:00Z"}, token=keys.super_admin)
    assert moved["advanceClock"]["errors"] == []
    after = (await api.ok(UPCOMING, token=keys.owner))["subscription"]
    assert after["currentPeriodEnd"] == "2026-03-31T10:00:00Z"  # renewed before advanceClock returned

    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    renewal = next(node for node in invoices if node["periodStart"] == "2026-02-28T10:00:00Z")
    assert (renewal["number"], renewal["status"]) == ("INV-202602-000001", "PAID")
    for field in ("lines", "subtotal", "discount", "tax", "taxName", "total", "creditApplied"):
        assert renewal[field] == upcoming[field], field
    assert upcoming["amountDue"] == renewal["total"] and renewal["amountDue"] == {"amount": "0"}  # paid


async def test_past_due_list_shows_retries(db, api, keys, settings):
    async with db.write() as session:
        session.add(TestClock(id=1, now=T0))
    plan = await make_plan(db, monthly=100000, trial_days=0)
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    await subscribe(db, None, organization_id=keys.organization_id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None,
                    idempotency_key=None, gateways=GatewayRegistry(settings), now=T0)
    from tests.services.billing_run_helpers import replace_card

    await replace_card(db, keys.organization_id, "pm_card_declined")
    await api.ok(ADVANCE, {"to": "2026-03-01T12:00:00Z"}, token=keys.super_admin)  # renewal Feb 28 + retry Mar 1
    nodes = [edge["node"] for edge in (await api.ok(PAST_DUE, token=keys.super_admin))["subscriptions"]["edges"]]
    assert nodes == [{"status": "PAST_DUE", "retryCount": 1, "lastRetryAt": "2026-03-01T10:00:00Z",
                      "nextRetryAt": "2026-03-03T10:00:00Z", "organization": {"externalId": "acme"}}]
    assert (await api.post(PAST_DUE, token=keys.owner))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
