"""The billing portal's live usage bars: a socket opened with a portal link (``{"portalToken": ...}``) reads
its organization's usage through the portal's one document and nothing else, and closes (4403) when the link
ends; the script the page includes sends exactly that document."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from billing_graphql.db.models import ApiKey
from billing_graphql.graphql.live.transport import PORTAL_USAGE
from billing_graphql.http.portal.live import SCRIPT, SCRIPT_PATH
from billing_graphql.services.platform.auth import hash_api_key
from tests.helpers import gid, make_keys
from tests.live.conftest import LiveClient
from tests.live.test_live_usage_invoices import record

SECRET = "portal-secret-for-live-tests-0123456789"
PORTAL = {"portal_secret": SECRET, "public_url": "https://billing.example"}
CREATE = """mutation { createBillingPortalSession(input: {returnUrl: "https://app.example/billing"}) {
  url errors { code } } }"""
REVOKE_SESSIONS = "mutation { revokeBillingPortalSessions { errors { code } } }"
REVOKE_KEY = "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { errors { code } } }"

pytestmark = pytest.mark.parametrize("live_settings", [PORTAL], indirect=True)


async def portal_token(server, token: str) -> str:
    created = (await server.api.ok(CREATE, token=token))["createBillingPortalSession"]
    assert created["errors"] == []
    return urlsplit(created["url"]).path.rsplit("/", 1)[1]


async def portal_socket(server, link: str) -> LiveClient:
    return await (await LiveClient.open(server.ws_url, payload={"portalToken": link})).acked()


async def test_a_portal_link_follows_its_organizations_usage(db, live_server, live_clients):
    keys = await make_keys(db)
    link = await portal_token(live_server, keys.owner)
    client = await portal_socket(live_server, link)
    other = await (await LiveClient.open(live_server.ws_url, keys.other_owner)).acked()
    live_clients += [client, other]
    await client.subscribe("usage", PORTAL_USAGE)
    await other.subscribe("usage", PORTAL_USAGE)
    await asyncio.sleep(0.4)
    await record(live_server.api, keys.owner, "p-1", quantity=4)
    message = await client.receive()
    assert message["id"] == "usage"
    assert message["payload"]["data"]["usageUpdated"] == {"metric": {"code": "messages"}, "used": "4", "limit": None}
    await other.quiet(0.5)  # the other organization's socket, same document: nothing


@pytest.mark.parametrize("document", [
    "subscription { billingEvents { id } }",
    "subscription { usageUpdated { metric { code } used limit } }",  # not the portal's text
    "query { viewer { role } }",
    "mutation { revokeBillingPortalSessions { errors { code } } }",
])
async def test_a_portal_link_runs_nothing_else(db, live_server, live_clients, document):
    keys = await make_keys(db)
    client = await portal_socket(live_server, await portal_token(live_server, keys.owner))
    live_clients.append(client)
    await client.subscribe("1", document)
    message = await client.receive()
    assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "FORBIDDEN", message
    await client.subscribe("2", None, documentId="sha256:" + "0" * 64)
    assert (await client.receive())["type"] == "error"


async def test_a_bad_or_ended_link_is_refused(db, live_server, live_clients):
    keys = await make_keys(db)
    link = await portal_token(live_server, keys.owner)
    forged = await LiveClient.open(live_server.ws_url, payload={"portalToken": link[:-2] + "xx"})
    live_clients.append(forged)
    assert await forged.closed_with() == 4401
    assert (await live_server.api.ok(REVOKE_SESSIONS, token=keys.owner))["revokeBillingPortalSessions"]["errors"] == []
    ended = await LiveClient.open(live_server.ws_url, payload={"portalToken": link})
    live_clients.append(ended)
    assert await ended.closed_with() == 4401


async def test_ending_the_portal_sessions_closes_the_socket(db, live_server, live_clients):
    keys = await make_keys(db)
    client = await portal_socket(live_server, await portal_token(live_server, keys.owner))
    live_clients.append(client)
    await client.subscribe("usage", PORTAL_USAGE)
    await asyncio.sleep(0.3)
    assert (await live_server.api.ok(REVOKE_SESSIONS, token=keys.owner))["revokeBillingPortalSessions"]["errors"] == []
    assert await client.closed_with(timeout=6) == 4403


async def test_revoking_the_key_that_asked_for_the_link_closes_the_socket(db, live_server, live_clients):
    keys = await make_keys(db)
    client = await portal_socket(live_server, await portal_token(live_server, keys.admin))
    live_clients.append(client)
    await client.subscribe("usage", PORTAL_USAGE)
    async with db.read() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_api_key(keys.admin)))
    revoked = await live_server.api.ok(REVOKE_KEY, {"i": {"id": gid("ApiKey", key_id)}}, token=keys.owner)
    assert revoked["revokeApiKey"]["errors"] == []
    assert await client.closed_with(timeout=6) == 4403


async def test_the_page_script_is_served_and_sends_the_portal_document(db, live_server):
    response = await live_server.api.client.get(SCRIPT_PATH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert response.content == SCRIPT.read_bytes()
    (sent,) = re.findall(r'var DOCUMENT = "([^"]*)";', SCRIPT.read_text())
    assert sent == PORTAL_USAGE
