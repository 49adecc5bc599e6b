"""The limits of a live socket: sockets per credential, operations per socket, message size, the rate limit
counting subscribe messages, trusted documents, and the slow client's bounded queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from billing_graphql.graphql.persisted import TrustedDocuments
from billing_graphql.services.live.hub import MAX_QUEUE, LiveEvent, Subscriber
from tests.helpers import make_keys
from tests.live.conftest import LiveClient

USAGE = "subscription { usageUpdated { used } }"


@pytest.mark.parametrize("live_settings", [{"ws_max_per_credential": 2}], indirect=True)
async def test_sockets_per_credential(db, live_server, live_clients):
    keys = await make_keys(db)
    for _ in range(2):
        live_clients.append(await (await LiveClient.open(live_server.ws_url, keys.owner)).acked())
    third = await LiveClient.open(live_server.ws_url, keys.owner)
    assert await third.closed_with() == 4429
    live_clients.append(await (await LiveClient.open(live_server.ws_url, keys.admin)).acked())  # another credential
    await live_clients[0].close()
    await asyncio.sleep(0.3)
    live_clients.append(await (await LiveClient.open(live_server.ws_url, keys.owner)).acked())  # a place came free


async def test_ten_operations_per_socket(db, live_server, live_clients):
    keys = await make_keys(db)
    client = await (await LiveClient.open(live_server.ws_url, keys.owner)).acked()
    live_clients.append(client)
    for index in range(10):
        await client.subscribe(str(index), USAGE)
    await client.subscribe("10", USAGE)
    message = await client.receive()
    assert message["type"] == "error" and message["id"] == "10"
    assert message["payload"][0]["message"] == "Subscription limit reached"
    await client.send({"id": "3", "type": "complete"})
    await asyncio.sleep(0.2)
    await client.subscribe("11", USAGE)
    await client.quiet()  # accepted: one place came free


@pytest.mark.parametrize("live_settings", [{"max_body_bytes": 2048}], indirect=True)
async def test_a_message_over_the_body_limit_closes_1009(db, live_server):
    keys = await make_keys(db)
    client = await (await LiveClient.open(live_server.ws_url, keys.owner)).acked()
    await client.subscribe("1", USAGE + " " * 3000)
    assert await client.closed_with() == 1009


async def test_documents_pass_the_same_token_and_alias_limits(db, live_server):
    keys = await make_keys(db)
    client = await (await LiveClient.open(live_server.ws_url, keys.owner)).acked()
    fields = " ".join(f"a{index}: used" for index in range(40))  # BILLING_MAX_ALIASES 30
    await client.subscribe("1", f"subscription {{ usageUpdated {{ {fields} }} }}")
    message = await client.receive()
    assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    await client.subscribe("2", "subscription { usageUpdated { " + "used " * 2100 + "} }")  # BILLING_MAX_TOKENS
    message = await client.receive()
    assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    await client.subscribe("3", "subscription { usageUpdated {")  # a document that does not parse: the protocol's 4400
    assert await client.closed_with() == 4400


@pytest.mark.parametrize("live_settings", [{"rate_limit": 3}], indirect=True)
async def test_subscribe_messages_count_against_the_rate_limit(db, live_server, live_clients):
    keys = await make_keys(db)
    client = await (await LiveClient.open(live_server.ws_url, keys.owner)).acked()
    live_clients.append(client)
    for index in range(3):
        await client.subscribe(str(index), USAGE)
    await client.subscribe("3", USAGE)
    message = await client.receive()
    assert message["type"] == "error" and message["id"] == "3"
    assert message["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    # ... and the same budget as the credential's HTTP requests
    response = await live_server.api.client.post("/graphql", json={"query": "{ viewer { role } }"},
                                                 headers={"authorization": f"Bearer {keys.owner}"})
    assert response.status_code == 429


@pytest.mark.parametrize("live_settings", [{"trusted_documents": "all"}], indirect=True)
async def test_trusted_documents_apply_to_subscriptions(db, live_server, live_clients):
    keys = await make_keys(db)
    client = await (await LiveClient.open(live_server.ws_url, keys.owner)).acked()
    live_clients.append(client)
    await client.subscribe("1", USAGE)
    refused = await client.receive()
    assert refused["type"] == "error" and refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
    await client.subscribe("2", None, documentId="0" * 64)
    unknown = await client.receive()
    assert unknown["type"] == "error" and unknown["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    documents = TrustedDocuments.load()
    viewer = next(identifier for identifier, body in documents.bodies.items() if "query Viewer" in body)
    await client.subscribe("3", None, documentId=viewer)
    answered = await client.receive()
    assert answered["type"] == "next" and answered["payload"]["data"]["viewer"] is not None


async def test_a_slow_subscriber_is_closed_4408_past_the_queue_limit():
    closed: list[tuple[int, str]] = []
    subscriber = Subscriber(frozenset({uuid.uuid4()}), events=True, usage=False,
                            on_close=lambda code, reason: closed.append((code, reason)))
    event = LiveEvent(id=uuid.uuid4(), organization_id=None, type="invoice.paid", created_at=datetime.now(UTC),
                      data={})
    for _ in range(MAX_QUEUE):
        subscriber.push(event)
    assert closed == [] and len(subscriber.queue) == MAX_QUEUE
    subscriber.push(event)
    assert closed and closed[0][0] == 4408 and not subscriber.queue  # memory given back
    assert await subscriber.next_event() is None
