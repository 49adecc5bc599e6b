"""Shared executions: one GraphQL execution per (event, document, variables, access scope), its result
sent to every socket of the group under that socket's own operation id.

Sockets that subscribe with the same document text, operation name and variables, and whose credentials
give the same access (``access_scope``: the role, the organization, and for PARTNER keys the key, whose
grants decide what it reads), receive the same messages. The first such subscription starts one
execution (Strawberry's ``schema.stream`` with a context of its own, ``GroupLive`` as its
``context.live``); every later one joins it; the last to leave cancels it. Each result is encoded once
and queued on each member; each member's own task sends it, so one slow socket delays nobody else and
is closed alone (4408) once more than ``MAX_QUEUE`` messages wait for it.

Shared only where a late joiner misses nothing (``shared_field``): ``billingEvents`` without ``after``
(or with it null: a replay is the subscriber's own), ``usageUpdated`` and ``usageSnapshotsUpdated``,
which send nothing when they start. ``invoiceUpdated`` sends the invoice's current state first, and queries or mutations
over the socket are never shared: those run per operation, as before.

``LiveGroups.executions`` counts the results the shared executions produced (one per event and group,
whatever the number of sockets they went to); ``LiveGroups.sent`` counts the messages queued to sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from litestar.exceptions import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from graphql import (FieldNode, GraphQLError, NullValueNode, OperationDefinitionNode, OperationType, ValueNode,
                     VariableNode, parse)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.services.live.hub import MAX_QUEUE, SLOW_CLIENT, next_in

if TYPE_CHECKING:
    from billing_graphql.graphql.live.transport import LiveTransport

log = logging.getLogger("billing_graphql.live")

SHARED_FIELDS = frozenset({"billingEvents", "usageUpdated", "usageSnapshotsUpdated"})


def shared_field(query: str, operation_name: str | None, variables: dict | None) -> bool:
    """Whether the operation is a subscription whose one root field may be shared (see the module)."""
    try:
        document = parse(query, no_location=True)
    except GraphQLError:
        return False
    operations = [definition for definition in document.definitions if isinstance(definition, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [operation for operation in operations if operation.name and operation.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return False
    selections = operations[0].selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return False
    field = selections[0]
    if field.directives or field.name.value not in SHARED_FIELDS:
        return False
    return not (field.name.value == "billingEvents" and any(argument.name.value == "after" and _given(argument.value,
                                                                                                      variables)
                                                            for argument in field.arguments or ()))


def _given(value: ValueNode, variables: dict | None) -> bool:
    """Whether an argument's value is not null (a variable's: in ``variables``)."""
    if isinstance(value, VariableNode):
        return (variables or {}).get(value.name.value) is not None
    return not isinstance(value, NullValueNode)


def access_scope(actor: Actor) -> tuple:
    """What of a credential decides what a subscription shows it: its role and organization; a PARTNER
    key's grants are its own, so partner keys share only with themselves."""
    return (actor.role.value, actor.organization_id, actor.api_key_id if actor.role is Role.PARTNER else None)


def group_key(actor: Actor, query: str, variables: dict | None, operation_name: str | None) -> tuple:
    return (access_scope(actor), query, operation_name, json.dumps(variables or {}, sort_keys=True, default=str))


class Member:
    """One operation of one socket in a group: its queue of frames waiting to be sent."""

    __slots__ = ("transport", "operation_id", "group", "queue", "wakeup", "ended")

    def __init__(self, transport: LiveTransport, operation_id: str, group: Group) -> None:
        self.transport = transport
        self.operation_id = operation_id
        self.group = group
        self.queue: deque[tuple[str, Any]] = deque()
        self.wakeup = asyncio.Event()
        self.ended = False

    def offer(self, item: tuple[str, Any]) -> None:
        if self.ended:
            return
        self.queue.append(item)
        if item[0] == "next" and len(self.queue) > MAX_QUEUE:
            self.ended = True
            self.queue.clear()
            self.transport.close_soon(SLOW_CLIENT, f"Slow client: more than {MAX_QUEUE} messages waiting")
        self.wakeup.set()

    async def next(self) -> tuple[str, Any] | None:
        return await next_in(self.queue, self.wakeup, lambda: self.ended)


class GroupLive:
    """A shared execution's ``context.live``: the hub, and closing or re-checking reaches every member."""

    def __init__(self, group: Group, hub: Any) -> None:
        self.group = group
        self.hub = hub

    def close(self, code: int, reason: str) -> None:
        for member in list(self.group.members):
            member.transport.close_soon(code, reason)

    def require(self, check: Callable[[], Awaitable[bool]]) -> Callable[[], None]:
        """Checked with each member socket's credential (``LiveTransport.recheck``); False closes it (4403)."""
        checks = self.group.checks
        checks.append(check)
        return lambda: checks.remove(check) if check in checks else None


class Group:
    def __init__(self, groups: LiveGroups, key: tuple, payload: dict, context: Any, schema: Any,
                 encode: Callable[[Any], str]) -> None:
        self.groups = groups
        self.key = key
        self.payload = payload
        self.context = context
        self.schema = schema
        self.encode = encode
        self.members: set[Member] = set()
        self.checks: list[Callable[[], Awaitable[bool]]] = []
        self.task: asyncio.Task | None = None
        context.live = GroupLive(self, context.live.hub)

    def broadcast(self, item: tuple[str, Any]) -> None:
        for member in list(self.members):
            member.offer(item)

    async def run(self) -> None:
        ending: tuple[str, Any] = ("complete", None)
        try:
            stream = await self.schema.stream(self.payload["query"], variable_values=self.payload.get("variables"),
                                              context_value=self.context,
                                              operation_name=self.payload.get("operationName"))
            async with aclosing(stream):
                first = True
                async for result in stream:
                    if first and isinstance(result, PreExecutionError):
                        ending = ("error", [error.formatted for error in result.errors or ()])
                        return
                    if not isinstance(result, ExecutionResult):
                        ending = ("error", [GraphQLError("Incremental delivery is not supported over "
                                                         "graphql-transport-ws").formatted])
                        return
                    first = False
                    self.groups.executions += 1
                    payload: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        payload["errors"] = [error.formatted for error in result.errors]
                    if result.extensions:
                        payload["extensions"] = result.extensions
                    self.groups.sent += len(self.members)
                    body = self.encode(payload)
                    self.broadcast(("next", body.decode() if isinstance(body, bytes) else body))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - as Strawberry's handler: logged, the operations complete
            log.exception("live: a shared subscription failed")
        finally:
            self.groups.forget(self)
            self.broadcast(ending)


class LiveGroups:
    """This process's shared executions (``app.state.live_groups``)."""

    def __init__(self) -> None:
        self.groups: dict[tuple, Group] = {}
        self.executions = 0
        self.sent = 0

    def join(self, transport: LiveTransport, operation_id: str, key: tuple, payload: dict,
             make_context: Callable[[], Any]) -> Member:
        group = self.groups.get(key)
        if group is None:
            group = Group(self, key, payload, make_context(), transport.schema, transport.view.encode_json)
            self.groups[key] = group
            group.task = asyncio.get_running_loop().create_task(group.run(), name="live-shared-execution")
        member = Member(transport, operation_id, group)
        group.members.add(member)
        return member

    def leave(self, member: Member) -> None:
        group = member.group
        group.members.discard(member)
        if not group.members and group.task is not None and not group.task.done():
            self.forget(group)
            group.task.cancel()

    def forget(self, group: Group) -> None:
        if self.groups.get(group.key) is group:
            del self.groups[group.key]

    async def stop(self) -> None:
        tasks = [group.task for group in self.groups.values() if group.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(Exception, asyncio.CancelledError):
                await task


async def run_member(transport: LiveTransport, member: Member, operation: Any) -> None:
    """A member operation's task: sends what its group produced, under its own id, until the group ends,
    the client completes the operation (cancels this task) or the socket closes."""
    prefix = '{"id":' + json.dumps(member.operation_id) + ',"type":"next","payload":'
    try:
        while (item := await member.next()) is not None:
            kind, body = item
            if kind == "next":
                await transport.websocket.ws.send_data(data=prefix + body + "}")
            elif kind == "error":
                await operation.send_operation_message({"id": member.operation_id, "type": "error", "payload": body})
                return
            else:
                await operation.send_operation_message({"id": member.operation_id, "type": "complete"})
                return
    except (WebSocketDisconnect, WebSocketDisconnected):  # the socket went away: its shutdown cleans up
        return
    except Exception:  # noqa: BLE001
        log.exception("live: sending a shared subscription's message failed")
    finally:
        member.ended = True
        transport.shared.discard(member)
        transport.state.live_groups.leave(member)
