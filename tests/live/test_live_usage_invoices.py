"""usageUpdated, invoiceUpdated and usageSnapshotsUpdated over a real socket on both databases, driven by
the HTTP API (recordUsage, payInvoice, grant/revokePartnerAccess)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import select

from billing_graphql.db.models import ApiKey
from billing_graphql.services.platform.auth import hash_api_key
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.factories import make_invoice, make_payment_method, make_subscription
from tests.helpers import gid, make_keys
from tests.live.conftest import LiveClient

RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted errors { code } } }"""
USAGE = "subscription($metrics: [String!]) { usageUpdated(metrics: $metrics) { metric { code } used limit remaining " \
        "percentUsed amount } }"
INVOICE = "subscription($id: ID!) { invoiceUpdated(id: $id) { id status amountDue { amount currency } } }"
SNAPSHOTS = "subscription($ids: [ID!]) { usageSnapshotsUpdated(organizationIds: $ids) { organization { id } " \
            "metrics { metric { code } used } } }"
PAY = """mutation($input: PayInvoiceInput!) { payInvoice(input: $input) { invoice { status } errors { code } } }"""
GRANT = """mutation($input: PartnerAccessInput!) { grantPartnerAccess(input: $input) { errors { code } } }"""
REVOKE_GRANT = """mutation($input: PartnerAccessInput!) { revokePartnerAccess(input: $input) { errors { code } } }"""
REVOKE_KEY = "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { errors { code } } }"


async def key_gid(db, token: str) -> str:
    async with db.read() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(token)))
    return gid("ApiKey", key_id)


async def record(api, token, key, metric="messages", quantity=1):
    events = [{"metric": metric, "quantity": quantity, "timestamp": datetime.now(UTC).isoformat(),
               "idempotencyKey": key}]
    result = (await api.ok(RECORD, {"input": {"events": events}}, token=token))["recordUsage"]
    assert result == {"accepted": 1, "errors": []}


async def subscribed(server, token, query, variables=None) -> LiveClient:
    client = await (await LiveClient.open(server.ws_url, token)).acked()
    await client.subscribe("1", query, variables)
    await asyncio.sleep(0.4)
    return client


async def test_usage_updated_after_record_usage_coalesced_per_second(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.member, USAGE)
    await record(live_server.api, keys.owner, "u-1")
    first = (await client.receive())["payload"]["data"]["usageUpdated"]
    assert first == {"metric": {"code": "messages"}, "used": "1", "limit": None, "remaining": None,
                     "percentUsed": None, "amount": None}
    started = time.monotonic()
    for index in range(2, 7):
        await record(live_server.api, keys.owner, f"u-{index}")
    second = await client.receive()
    assert time.monotonic() - started >= 0.5  # waited for the second to pass, not one message per call
    assert second["payload"]["data"]["usageUpdated"]["used"] == "6"
    await client.quiet(1.3)


async def test_usage_updated_follows_only_the_metrics_asked_for_and_only_its_organization(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.admin, USAGE, {"metrics": ["api_calls"]})
    other = await subscribed(live_server, keys.other_owner, USAGE)
    await record(live_server.api, keys.owner, "m-1", "messages")
    await record(live_server.api, keys.owner, "a-1", "api_calls", 3)
    message = (await client.receive())["payload"]["data"]["usageUpdated"]
    assert (message["metric"]["code"], message["used"]) == ("api_calls", "3")
    await client.quiet(1.2)
    await other.quiet(0.2)


async def test_usage_updated_refuses_unknown_metrics(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.admin, USAGE, {"metrics": ["nope"]})
    message = await client.receive()
    assert "unknown metric" in message["payload"]["errors"][0]["message"]


async def test_invoice_updated_sends_the_current_state_then_paid(db, live_server):
    keys = await make_keys(db)
    subscription = await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE)
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription.id)
    card = await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    client = await subscribed(live_server, keys.owner, INVOICE, {"id": gid("Invoice", invoice.id)})
    current = (await client.receive())["payload"]["data"]["invoiceUpdated"]
    assert current["id"] == gid("Invoice", invoice.id) and current["status"] == "OPEN"
    assert current["amountDue"]["amount"] == str(invoice.total)
    paid = await live_server.api.ok(PAY, {"input": {"invoiceId": gid("Invoice", invoice.id),
                                                    "paymentMethodId": gid("PaymentMethod", card.id)}},
                                    token=keys.admin)
    assert paid["payInvoice"]["invoice"]["status"] == "PAID"
    message = await client.receive()
    assert message["payload"]["data"]["invoiceUpdated"] == {"id": gid("Invoice", invoice.id), "status": "PAID",
                                                            "amountDue": {"amount": "0", "currency": "IDR"}}
    assert message["payload"]["extensions"]["eventId"].startswith("msg_")
    await client.quiet()


async def test_invoice_updated_of_another_organization_is_not_found(db, live_server):
    keys = await make_keys(db)
    invoice = await make_invoice(db, keys.other_organization_id, status=InvoiceStatus.OPEN)
    client = await subscribed(live_server, keys.owner, INVOICE, {"id": gid("Invoice", invoice.id)})
    message = await client.receive()
    assert message["payload"]["data"] is None and "No invoice" in message["payload"]["errors"][0]["message"]


async def test_partner_snapshots_over_granted_organizations_and_closed_when_the_grant_goes(db, live_server):
    keys = await make_keys(db)
    partner_key = await key_gid(db, keys.partner)
    grant = {"input": {"apiKeyId": partner_key, "organizationId": keys.organization_gid}}
    assert (await live_server.api.ok(GRANT, grant, token=keys.super_admin))["grantPartnerAccess"]["errors"] == []
    refused = await subscribed(live_server, keys.partner, SNAPSHOTS,
                               {"ids": [gid("Organization", keys.other_organization_id)]})
    assert (await refused.receive())["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    client = await subscribed(live_server, keys.partner, SNAPSHOTS, {"ids": [keys.organization_gid]})
    await record(live_server.api, keys.owner, "p-1")
    await record(live_server.api, keys.other_owner, "p-other")
    snapshot = (await client.receive())["payload"]["data"]["usageSnapshotsUpdated"]
    assert snapshot["organization"]["id"] == keys.organization_gid
    assert {"metric": {"code": "messages"}, "used": "1"} in snapshot["metrics"]
    await record(live_server.api, keys.owner, "p-2")
    await client.quiet(2.0)  # coalesced: at most one per organization per 5 s
    started = time.monotonic()
    assert (await live_server.api.ok(REVOKE_GRANT, grant, token=keys.super_admin))["revokePartnerAccess"]["errors"] == []
    code = await client.closed_with(timeout=8)
    assert code == 4403 and time.monotonic() - started < 5


async def test_revoking_the_key_closes_its_sockets_within_5_seconds(db, live_server):
    keys = await make_keys(db)
    member_key = await key_gid(db, keys.member)
    client = await subscribed(live_server, keys.member, USAGE)
    started = time.monotonic()
    revoked = await live_server.api.ok(REVOKE_KEY, {"i": {"id": member_key}}, token=keys.owner)
    assert revoked["revokeApiKey"]["errors"] == []
    assert await client.closed_with(timeout=8) == 4403
    assert time.monotonic() - started < 5
