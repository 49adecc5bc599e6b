"""The webhook operations over GraphQL: endpoints (secret shown once, rotation), who may do
what, production-mode address checks, deliveries listed and replayed, a whole lifecycle
received and verified across a rotation."""

from __future__ import annotations

import uuid
from dataclasses import replace

import httpx
import pytest
from strawberry import relay

from billing_graphql.app import create_app
from billing_graphql.jobs.webhook_delivery import WebhookWorker
from tests.factories import database_state, make_payment_method, make_plan
from tests.helpers import GraphQLClient, gid
from tests.webhooks.receiver import running_receiver

ERRORS = "errors { code message field }"
ENDPOINT = "id url events enabled description organizationId disabledReason previousSecretExpiresAt"
CREATE = f"""mutation($i: CreateWebhookEndpointInput!) {{ createWebhookEndpoint(input: $i) {{
  webhookEndpoint {{ {ENDPOINT} }} secret {ERRORS} }} }}"""
UPDATE = f"""mutation($i: UpdateWebhookEndpointInput!) {{ updateWebhookEndpoint(input: $i) {{
  webhookEndpoint {{ {ENDPOINT} }} {ERRORS} }} }}"""
DELETE = f"""mutation($i: DeleteWebhookEndpointInput!) {{ deleteWebhookEndpoint(input: $i) {{
  deletedWebhookEndpointId {ERRORS} }} }}"""
ROTATE = f"""mutation($i: RotateWebhookSecretInput!) {{ rotateWebhookSecret(input: $i) {{
  webhookEndpoint {{ {ENDPOINT} }} secret {ERRORS} }} }}"""
DELIVERY = "id endpointId eventType status attempts lastStatusCode lastResponseBody nextAttemptAt deliveredAt"
REDELIVER = f"""mutation($i: RedeliverWebhookInput!) {{ redeliverWebhook(input: $i) {{
  webhookDelivery {{ {DELIVERY} }} {ERRORS} }} }}"""
TEST = f"""mutation($i: SendTestWebhookInput!) {{ sendTestWebhook(input: $i) {{
  webhookDelivery {{ {DELIVERY} }} {ERRORS} }} }}"""
ENDPOINTS = f"query($org: ID) {{ webhookEndpoints(organizationId: $org) {{ {ENDPOINT} }} }}"
DELIVERIES = f"""query($e: ID, $s: WebhookDeliveryStatus, $after: String) {{
  webhookDeliveries(endpointId: $e, status: $s, first: 2, after: $after) {{
    edges {{ cursor node {{ {DELIVERY} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
SUBSCRIBE = "mutation($i: SubscribeInput!) { subscribe(input: $i) { subscription { id status } errors { code } } }"
CANCEL = "mutation($i: CancelInput!) { cancel(input: $i) { subscription { id status } errors { code } } }"
RESUME = "mutation { resume { subscription { id } errors { code } } }"


async def create(api, token, url="http://127.0.0.1:9/hooks", events=("*",), **extra):
    data = await api.ok(CREATE, {"i": {"url": url, "events": list(events), **extra}}, token=token)
    return data["createWebhookEndpoint"]


def drain(db):
    return WebhookWorker(db, production=False, rand=lambda: 0.5).run_until_idle()


async def test_a_lifecycle_is_received_and_verified_across_a_secret_rotation(api, db, keys):
    plan = await make_plan(db, slug="growth")
    await make_payment_method(db, keys.organization_id)
    with running_receiver() as receiver:
        created = await create(api, keys.owner, receiver.url, ["subscription.*", "invoice.*"], description="crm")
        assert created["errors"] == [] and created["secret"].startswith("whsec_")
        endpoint = created["webhookEndpoint"]
        assert endpoint["organizationId"] == keys.organization_gid and endpoint["enabled"] is True
        old_secret = receiver.secrets = [created["secret"]]

        subscribed = await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}}, token=keys.owner)
        assert subscribed["subscribe"]["errors"] == []
        await drain(db)
        rotated = (await api.ok(ROTATE, {"i": {"endpointId": endpoint["id"]}}, token=keys.owner))["rotateWebhookSecret"]
        assert rotated["secret"].startswith("whsec_") and rotated["webhookEndpoint"]["previousSecretExpiresAt"]
        # The receiver still knows only the old secret: deliveries verify with it for 24 hours.
        await api.ok(CANCEL, {"i": {}}, token=keys.owner)
        await drain(db)
        receiver.secrets = [rotated["secret"]]  # ...and with the new one once it is deployed
        await api.ok(RESUME, token=keys.owner)
        await api.ok(CANCEL, {"i": {"immediately": True}}, token=keys.owner)
        await drain(db)
        assert receiver.rejected == [] and old_secret != receiver.secrets
        types = receiver.types()
        assert {"subscription.created", "invoice.created", "invoice.paid", "subscription.canceled"} <= set(types)
        assert len(types) == len(set(receiver.counts())) >= 5  # each event once

        listed = (await api.ok(DELIVERIES, {"e": endpoint["id"]}, token=keys.owner))["webhookDeliveries"]
        assert len(listed["edges"]) == 2 and listed["pageInfo"]["hasNextPage"] is True
        node = listed["edges"][0]["node"]
        assert (node["status"], node["attempts"], node["lastStatusCode"]) == ("DELIVERED", 1, 200)
        assert node["nextAttemptAt"] is None and node["deliveredAt"] and node["endpointId"] == endpoint["id"]

        again = (await api.ok(REDELIVER, {"i": {"deliveryId": node["id"]}}, token=keys.admin))["redeliverWebhook"]
        assert again["errors"] == [] and again["webhookDelivery"]["status"] == "PENDING"
        await drain(db)
        assert max(receiver.counts().values()) == 2  # the replayed one, same webhook-id


async def test_send_test_webhook_and_failed_filter(api, db, keys):
    with running_receiver(statuses=[410]) as receiver:
        created = await create(api, keys.owner, receiver.url)
        receiver.secrets = [created["secret"]]
        endpoint_id = created["webhookEndpoint"]["id"]
        sent = (await api.ok(TEST, {"i": {"endpointId": endpoint_id}}, token=keys.owner))["sendTestWebhook"]
        assert sent["webhookDelivery"]["eventType"] == "webhook.test" and sent["webhookDelivery"]["attempts"] == 0
        await drain(db)
        failed = (await api.ok(DELIVERIES, {"s": "FAILED"}, token=keys.owner))["webhookDeliveries"]["edges"]
        assert [edge["node"]["lastStatusCode"] for edge in failed] == [410]
        (listed,) = (await api.ok(ENDPOINTS, token=keys.owner))["webhookEndpoints"]
        assert listed["enabled"] is False and "410" in listed["disabledReason"]
        enabled = (await api.ok(UPDATE, {"i": {"id": endpoint_id, "enabled": True}}, token=keys.owner))
        assert enabled["updateWebhookEndpoint"]["webhookEndpoint"]["enabled"] is True


async def test_roles_and_organizations(api, db, keys):
    mine = (await create(api, keys.owner))["webhookEndpoint"]
    platform = await create(api, keys.super_admin)
    assert platform["webhookEndpoint"]["organizationId"] is None
    for_other = await create(api, keys.super_admin, organizationId=gid("Organization", keys.other_organization_id))
    assert for_other["webhookEndpoint"]["organizationId"] == gid("Organization", keys.other_organization_id)

    # Members and partners may not; another organization's endpoint is NOT_FOUND.
    for token in (keys.member, keys.partner):
        result = await api.post(ENDPOINTS, token=token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await api.ok(UPDATE, {"i": {"id": mine["id"], "url": "http://127.0.0.1:1/x"}}, token=keys.other_owner)
    assert other["updateWebhookEndpoint"]["errors"][0]["code"] == "NOT_FOUND"
    other = await api.ok(DELETE, {"i": {"id": mine["id"]}}, token=keys.other_owner)
    assert other["deleteWebhookEndpoint"]["errors"][0]["code"] == "NOT_FOUND"
    stolen = await create(api, keys.owner, organizationId=gid("Organization", keys.other_organization_id))
    assert stolen["errors"][0]["code"] == "NOT_FOUND"
    assert [e["id"] for e in (await api.ok(ENDPOINTS, token=keys.other_owner))["webhookEndpoints"]] == [
        for_other["webhookEndpoint"]["id"]]
    assert len((await api.ok(ENDPOINTS, token=keys.super_admin))["webhookEndpoints"]) == 3
    node = await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": mine["id"]}, token=keys.other_owner)
    assert node["node"] is None

    deleted = await api.ok(DELETE, {"i": {"id": mine["id"]}}, token=keys.admin)
    assert deleted["deleteWebhookEndpoint"]["deletedWebhookEndpointId"] == mine["id"]
    assert (await api.ok(ENDPOINTS, token=keys.owner))["webhookEndpoints"] == []


@pytest.mark.parametrize("url, events", [
    ("ftp://example.com/x", ["*"]),
    ("http://exa mple.com/x", ["*"]),
    ("http://user:pw@example.com/x", ["*"]),
    ("http://127.0.0.1/x\x00", ["*"]),
    ("http://127.0.0.1/x", []),
    ("http://127.0.0.1/x", ["Invoice Paid"]),
    ("http://127.0.0.1/x", ["gateway.sandbox.payment.captured"]),
])
async def test_bad_input_is_a_validation_error_with_nothing_written(api, db, keys, url, events):
    before = await database_state(db, exclude=("api_keys",))
    result = await api.post(CREATE, {"i": {"url": url, "events": events}}, token=keys.owner)
    errors = result.get("errors") or result["data"]["createWebhookEndpoint"]["errors"]
    assert errors and ("code" not in errors[0] or errors[0]["code"] == "VALIDATION"), errors
    assert await database_state(db, exclude=("api_keys",)) == before


@pytest.fixture
async def production_api(db, settings):
    app = create_app(replace(settings, production=True), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield GraphQLClient(client, db)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hooks", "https://10.0.0.1/hooks", "https://169.254.169.254/latest/meta-data",
    "https://localhost:8443/hooks", "https://[::1]/hooks", "https://[::ffff:10.0.0.1]/hooks",
    "http://example.com/hooks",
])
async def test_production_mode_refuses_private_loopback_and_link_local_addresses(production_api, keys, url):
    result = await create(production_api, keys.owner, url)
    assert result["webhookEndpoint"] is None and result["secret"] is None
    assert (result["errors"][0]["code"], result["errors"][0]["field"]) == ("VALIDATION", "url")
    update_target = (await production_api.ok(ENDPOINTS, token=keys.owner))["webhookEndpoints"]
    assert update_target == []


async def test_listing_deliveries_sends_the_same_statements_for_3_or_30_of_them(api, db, keys):
    from billing_graphql.services.webhooks.deliveries import send_test
    from tests.helpers import T0, count_statements
    from tests.webhooks.conftest import STAFF

    endpoint = (await create(api, keys.owner))["webhookEndpoint"]
    endpoint_id = uuid.UUID(relay.GlobalID.from_id(endpoint["id"]).node_id)
    query = DELIVERIES.replace("first: 2", "first: 100")
    counts = []
    for added in (3, 27):
        for _ in range(added):
            await send_test(db, STAFF, endpoint_id, now=T0)
        with count_statements(db) as counter:
            listed = await api.ok(query, {"e": endpoint["id"]}, token=keys.owner)
        counts.append((len(listed["webhookDeliveries"]["edges"]), counter.count))
    assert counts[0][0] == 3 and counts[1][0] == 30 and counts[0][1] == counts[1][1]


@pytest.mark.parametrize("events", [["customer.subscription.updated"], ["invoice.paid", "invoice.finalised"],
                                    ["customer.*"]])
async def test_an_unknown_event_type_is_validation_on_events(api, db, keys, events):
    """Issue 18, item 10: only the event types the gateway sends (or their families) are accepted."""
    before = await database_state(db, exclude=("api_keys",))
    created = await create(api, keys.owner, events=events)
    assert [(e["code"], e["field"]) for e in created["errors"]] == [("VALIDATION", "events")]
    assert created["webhookEndpoint"] is None
    assert await database_state(db, exclude=("api_keys",)) == before
    endpoint = (await create(api, keys.owner, events=["invoice.*"]))["webhookEndpoint"]
    updated = (await api.ok(UPDATE, {"i": {"id": endpoint["id"], "events": events}}, token=keys.owner))
    assert [(e["code"], e["field"]) for e in updated["updateWebhookEndpoint"]["errors"]] == [("VALIDATION", "events")]
    listed = (await api.ok(ENDPOINTS, token=keys.owner))["webhookEndpoints"]
    assert [item["events"] for item in listed] == [["invoice.*"]]
