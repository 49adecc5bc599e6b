"""Shared executions (graphql.live.groups): sockets with the same document, variables and access scope
get one GraphQL execution per event, each under its own operation id; different roles, organizations or
partner keys are never grouped together; a slow member is closed alone."""

from __future__ import annotations

import asyncio

from billing_graphql.domain.roles import Role
from billing_graphql.graphql.live.groups import shared_field
from billing_graphql.services.live import hub as live_hub
from billing_graphql.services.platform.api_keys import create_api_key
from tests.helpers import T0, make_keys
from tests.live.conftest import LiveClient
from tests.live.test_live_events import emit

EVENTS = "subscription { billingEvents { id type data } }"
SNAPSHOTS = "subscription { usageSnapshotsUpdated { organization { id } } }"


async def opened(server, token, operation_id, query=EVENTS, variables=None) -> LiveClient:
    client = await (await LiveClient.open(server.ws_url, token)).acked()
    await client.subscribe(operation_id, query, variables)
    return client


def groups_of(server):
    return server.app.state.live_groups


async def test_same_document_same_scope_runs_once_per_event_for_every_socket(db, live_server, live_clients):
    keys = await make_keys(db)
    owners = [await opened(live_server, keys.owner, f"owner-{index}") for index in range(5)]
    admin = await opened(live_server, keys.admin, "admin")
    other = await opened(live_server, keys.other_owner, "other")
    live_clients += [*owners, admin, other]
    await asyncio.sleep(0.4)
    groups = groups_of(live_server)
    scopes = sorted((key[0][0], str(key[0][1])) for key in groups.groups)
    assert scopes == sorted([("OWNER", str(keys.organization_id)), ("ADMIN", str(keys.organization_id)),
                             ("OWNER", str(keys.other_organization_id))])
    assert sorted(len(group.members) for group in groups.groups.values()) == [1, 1, 5]
    executions, sent = groups.executions, groups.sent

    await emit(db, keys.organization_id, "payment_method.added", payload={"object": {"n": "shared"}})
    messages = [await client.receive() for client in [*owners, admin]]
    assert [message["id"] for message in messages] == [f"owner-{index}" for index in range(5)] + ["admin"]
    assert len({message["payload"]["data"]["billingEvents"]["id"] for message in messages}) == 1
    assert {message["payload"]["extensions"]["eventId"] for message in messages} == \
        {messages[0]["payload"]["data"]["billingEvents"]["id"]}
    # one execution for the five owners, one for the admin; none for the other organization
    assert (groups.executions - executions, groups.sent - sent) == (2, 6)
    await other.quiet(0.5)
    for client in owners:
        await client.quiet(0.1)


async def test_a_group_ends_with_its_last_member_and_a_late_joiner_gets_only_later_events(db, live_server,
                                                                                           live_clients):
    keys = await make_keys(db)
    first = await opened(live_server, keys.owner, "a")
    live_clients.append(first)
    await asyncio.sleep(0.3)
    await emit(db, keys.organization_id, "payment_method.added", payload={"object": {"n": 1}})
    assert (await first.receive())["payload"]["data"]["billingEvents"]["data"] == {"object": {"n": 1}}
    late = await opened(live_server, keys.owner, "b")
    live_clients.append(late)
    await asyncio.sleep(0.3)
    assert [len(group.members) for group in groups_of(live_server).groups.values()] == [2]
    await emit(db, keys.organization_id, "payment_method.added", payload={"object": {"n": 2}})
    for client, operation_id in ((first, "a"), (late, "b")):
        message = await client.receive()
        assert message["id"] == operation_id and message["payload"]["data"]["billingEvents"]["data"] == {"object": {"n": 2}}
    await first.send({"id": "a", "type": "complete"})
    await late.send({"id": "b", "type": "complete"})
    await asyncio.sleep(0.3)
    assert groups_of(live_server).groups == {}


async def test_partner_keys_share_only_with_themselves(db, live_server, live_clients):
    keys = await make_keys(db)
    _, second_partner = await create_api_key(db, None, role=Role.PARTNER, organization_id=None, label="p2", now=T0)
    clients = [await opened(live_server, token, "1", SNAPSHOTS, {}) for token in (keys.partner, keys.partner,
                                                                                    second_partner)]
    live_clients += clients
    await asyncio.sleep(0.4)
    assert sorted(len(group.members) for group in groups_of(live_server).groups.values()) == [1, 2]


async def test_a_slow_member_is_closed_alone(db, live_server, live_clients):
    keys = await make_keys(db)
    reader = await opened(live_server, keys.owner, "1")
    await asyncio.sleep(0.3)
    slow = await opened(live_server, keys.owner, "1")
    live_clients += [reader, slow]
    await asyncio.sleep(0.3)
    (group,) = groups_of(live_server).groups.values()
    first, second = sorted(group.members, key=lambda member: member.transport.ws.scope["client"][1]
                           == slow.connection.local_address[1])
    # more frames than MAX_QUEUE reach the second member before its task can send one (no await between)
    for _ in range(live_hub.MAX_QUEUE + 1):
        second.offer(("next", "{}"))
    assert await slow.closed_with() == live_hub.SLOW_CLIENT
    await emit(db, keys.organization_id, "payment_method.added", payload={"object": {"n": "after"}})
    message = await reader.receive()
    assert message["payload"]["data"]["billingEvents"]["data"] == {"object": {"n": "after"}}
    assert [len(group.members) for group in groups_of(live_server).groups.values()] == [1]


def test_what_is_shared():
    assert shared_field(EVENTS, None, None)
    assert shared_field("subscription($a: ID) { billingEvents(after: $a) { id } }", None, {})
    assert not shared_field("subscription($a: ID) { billingEvents(after: $a) { id } }", None, {"a": "msg_x"})
    assert not shared_field('subscription { billingEvents(after: "msg_x") { id } }', None, None)
    assert not shared_field('subscription { invoiceUpdated(id: "x") { id } }', None, None)
    assert not shared_field("query { viewer { role } }", None, None)
    assert not shared_field("mutation { recordUsage(input: {events: []}) { accepted } }", None, None)
    assert shared_field("subscription A { usageUpdated { used } } query B { viewer { role } }", "A", None)
    assert not shared_field("subscription A { usageUpdated { used } } query B { viewer { role } }", "B", None)
