"""billingEvents over graphql-transport-ws on both databases: auth and close codes, events once and only
after commit, never for a rolled-back transaction, never to another organization, replay with `after`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.platform.clock import current_time
from tests.helpers import make_keys
from tests.live.conftest import LiveClient

EVENTS = "subscription($types: [String!], $after: ID, $org: ID) { billingEvents(types: $types, after: $after, " \
         "organizationId: $org) { id type createdAt data } }"


async def emit(db, organization_id, event_type="organization.updated", *, commit=True, payload=None):
    """An outbox event written as services write them (emit_event in a write transaction)."""
    class Rollback(Exception):
        pass

    try:
        async with db.write() as session:
            emit_event(session, event_type=event_type, organization_id=organization_id,
                       payload=payload or {"object": {"n": 1}}, now=datetime.now(UTC))
            if not commit:
                raise Rollback
    except Rollback:
        pass


async def subscribed(server, token, *, variables=None, operation_id="1") -> LiveClient:
    client = await (await LiveClient.open(server.ws_url, token)).acked()
    await client.subscribe(operation_id, EVENTS, variables)
    await asyncio.sleep(0.3)  # the subscription is registered with the hub
    return client


async def test_events_arrive_once_after_commit_and_never_for_a_rollback(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.owner)
    await emit(db, keys.organization_id, "payment_method.added", commit=False, payload={"object": {"n": "rolled back"}})
    await emit(db, keys.organization_id, "payment_method.added", payload={"object": {"n": "kept"}})
    message = await client.receive()
    assert message["type"] == "next" and message["id"] == "1"
    event = message["payload"]["data"]["billingEvents"]
    assert event["type"] == "payment_method.added" and event["data"] == {"object": {"n": "kept"}}
    assert event["id"].startswith("msg_") and message["payload"]["extensions"]["eventId"] == event["id"]
    await client.quiet()  # once, and nothing for the rolled-back one


async def test_nothing_is_sent_before_the_transaction_commits(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.admin)
    async with db.write() as session:
        emit_event(session, event_type="organization.updated", organization_id=keys.organization_id,
                   payload={"object": {}}, now=datetime.now(UTC))
        await session.flush()
        await client.quiet(0.8)  # written, not committed: nothing yet
    message = await client.receive()
    assert message["payload"]["data"]["billingEvents"]["type"] == "organization.updated"


async def test_events_never_reach_another_organization(db, live_server):
    keys = await make_keys(db)
    ours = await subscribed(live_server, keys.owner)
    theirs = await subscribed(live_server, keys.other_owner)
    await emit(db, keys.other_organization_id, "organization.updated")
    assert (await theirs.receive())["payload"]["data"]["billingEvents"]["type"] == "organization.updated"
    await ours.quiet()


async def test_type_filters(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.owner, variables={"types": ["invoice.*"]})
    await emit(db, keys.organization_id, "organization.updated")
    await emit(db, keys.organization_id, "invoice.paid")
    assert (await client.receive())["payload"]["data"]["billingEvents"]["type"] == "invoice.paid"
    await client.quiet()


async def test_after_replays_what_was_missed(db, live_server):
    keys = await make_keys(db)
    client = await subscribed(live_server, keys.owner)
    await emit(db, keys.organization_id, "organization.updated", payload={"object": {"n": 1}})
    first = (await client.receive())["payload"]["data"]["billingEvents"]
    await client.close()
    await asyncio.sleep(0.01)
    await emit(db, keys.organization_id, "invoice.created", payload={"object": {"n": 2}})
    await emit(db, keys.organization_id, "invoice.paid", payload={"object": {"n": 3}})
    again = await subscribed(live_server, keys.owner, variables={"after": first["id"]})
    missed = [(await again.receive())["payload"]["data"]["billingEvents"] for _ in range(2)]
    assert [event["type"] for event in missed] == ["invoice.created", "invoice.paid"]
    await emit(db, keys.organization_id, "invoice.voided")
    assert (await again.receive())["payload"]["data"]["billingEvents"]["type"] == "invoice.voided"
    await again.quiet()


async def test_after_of_another_organization_is_refused(db, live_server):
    keys = await make_keys(db)
    theirs = await subscribed(live_server, keys.other_owner)
    await emit(db, keys.other_organization_id)
    their_event = (await theirs.receive())["payload"]["data"]["billingEvents"]
    ours = await subscribed(live_server, keys.owner, variables={"after": their_event["id"]})
    message = await ours.receive()
    assert message["type"] == "next" and message["payload"]["data"] is None
    assert "no event of this organization" in message["payload"]["errors"][0]["message"]


@pytest.mark.parametrize("payload, code", [
    ({}, 4401),
    ({"Authorization": "Bearer bgk_not-a-key"}, 4401),
    ({"Authorization": "Basic abc"}, 4401),
])
async def test_connection_init_without_a_working_credential_is_closed_4401(db, live_server, payload, code):
    await make_keys(db)
    client = await LiveClient.open(live_server.ws_url, payload=payload)
    assert await client.closed_with() == code


async def test_subscribe_before_init_is_closed_4401(db, live_server):
    client = await LiveClient.open(live_server.ws_url, init=False)
    await client.subscribe("1", EVENTS)
    assert await client.closed_with() == 4401


async def test_legacy_graphql_ws_protocol_is_refused_4406(db, live_server):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(live_server.ws_url, subprotocols=["graphql-ws"]) as connection:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), 10)
    assert closed.value.rcvd.code == 4406


async def test_a_lost_listen_connection_closes_sockets_1012_and_comes_back(db, live_server, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's announcements are in-process")
    from sqlalchemy import text

    keys = await make_keys(db)
    client = await subscribed(live_server, keys.owner)
    async with db.write() as session:  # as a database restart or an idle-connection reaper would
        await session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE query LIKE 'LISTEN%' AND datname = current_database()"))
    assert await client.closed_with() == 1012
    await asyncio.sleep(2.5)  # the hub listens again
    again = await subscribed(live_server, keys.owner)
    await emit(db, keys.organization_id, "invoice.paid")
    assert (await again.receive())["payload"]["data"]["billingEvents"]["type"] == "invoice.paid"


async def test_a_subscription_over_http_is_refused_with_the_way_to_run_it(api, db):
    keys = await make_keys(db)
    for body in ({"query": EVENTS}, {"query": "subscription Live { usageUpdated { used } } query Q { viewer { role } }",
                                     "operationName": "Live"}):
        response = await api.client.post("/graphql", json=body, headers={"authorization": f"Bearer {keys.owner}"})
        assert response.status_code == 400
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "WebSocket" in response.json()["errors"][0]["message"]
    # a query that only has a field named subscription still runs
    answer = await api.ok("query Q { subscription { id } }", token=keys.owner)
    assert answer == {"subscription": None}
