"""The ``graphql-transport-ws`` side of ``/graphql``: Strawberry's handler with the gateway's rules.

- Authentication in ``connection_init``'s payload, ``{"Authorization": "Bearer <API key or session
  token>"}``, checked as for HTTP (``services.platform.auth``). Missing or refused: close 4401.
  The billing portal's page sends ``{"portalToken": "<the link's token>"}`` instead: such a socket reads
  its organization's usage as a MEMBER would, through ``PORTAL_USAGE`` only (anything else: FORBIDDEN),
  and closes (4403) when the link ends (expiry, revokeBillingPortalSessions, its API key revoked).
- At most ``BILLING_WS_MAX_PER_CREDENTIAL`` sockets per credential (more: close 4429), in the process, or
  across processes with ``BILLING_REDIS_URL`` (``services.live.slots``);
  at most ``MAX_SUBSCRIPTIONS`` operations per socket (more: an ``error`` for that operation).
- A message larger than ``BILLING_MAX_BODY_BYTES`` closes the socket (1009); documents pass the same
  token, depth and alias limits as over HTTP (the schema's extensions).
- Each ``subscribe`` counts against the credential's rate limit like a request (``http.rate_limit``):
  over it, an ``error`` with ``extensions.code`` RATE_LIMITED for that operation.
- Registered documents: ``{"documentId": ...}`` (or Apollo's persistedQuery extension) in the
  subscribe payload; ``BILLING_TRUSTED_DOCUMENTS`` refuses free text as over HTTP.
- Every ``BILLING_WS_PING_SECONDS`` the server sends ``ping`` (clients answer ``pong``).
- While open, the credential (and any grant a subscription relies on) is checked again every
  ``RECHECK_SECONDS``: revoked, expired or role lost closes with 4403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError, parse
from litestar.exceptions import WebSocketDisconnect
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.litestar.controller import LitestarWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.graphql.context import Context
from billing_graphql.graphql.live.groups import Member, group_key, run_member, shared_field
from billing_graphql.graphql.loaders import Loaders
from billing_graphql.graphql.persisted import TrustedDocuments, document_id, requested_id
from billing_graphql.http.rate_limit import credential_digest
from billing_graphql.services.live import access
from billing_graphql.services.platform.auth import AuthenticationFailed, authenticate
from billing_graphql.services.portal.sessions import PortalTokenInvalid
from billing_graphql.services.platform.clock import current_time

log = logging.getLogger("billing_graphql.live")

MAX_SUBSCRIPTIONS = 10
RECHECK_SECONDS = 2.0
UNAUTHORIZED = 4401
FORBIDDEN = 4403
TOO_MANY_SOCKETS = 4429
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
MAX_REASON_BYTES = 120
PORTAL_CREDENTIAL = "portal "  # the socket's credential when connection_init sent {"portalToken": ...}
#: The one document a portal link's socket may run: the portal page's live usage bars
#: (http/portal/static/usage-live.js sends exactly this text).
PORTAL_USAGE = "subscription PortalUsage { usageUpdated { metric { code } used limit } }"


class LimitedWebSocketAdapter(LitestarWebSocketAdapter):
    """Strawberry's adapter, refusing a message over ``BILLING_MAX_BODY_BYTES`` (close 1009)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        limit = self.ws.app.state.settings.max_body_bytes
        try:
            while self.ws.connection_state != "disconnect":
                text = await self.ws.receive_text()
                if text == "":
                    raise NonTextMessageReceived
                if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
                    await self.close(MESSAGE_TOO_BIG, f"Message larger than {limit} bytes (BILLING_MAX_BODY_BYTES)")
                    return
                try:
                    yield self.view.decode_json(text)
                except ValueError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
        except WebSocketDisconnect:
            pass

    async def close(self, code: int, reason: str) -> None:
        reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")  # a close frame's reason: 123 bytes
        with suppress(Exception):  # already closed
            await self.ws.close(code=code, reason=reason)


class LiveSocket:
    """What the subscription resolvers see of their socket (``context.live``)."""

    def __init__(self, transport: LiveTransport) -> None:
        self.transport = transport
        self.checks: list[Callable[[], Awaitable[bool]]] = []

    @property
    def hub(self):
        return self.transport.state.live_hub

    def close(self, code: int, reason: str) -> None:
        self.transport.close_soon(code, reason)

    def require(self, check: Callable[[], Awaitable[bool]]) -> Callable[[], None]:
        """Re-check ``check`` with the credential; False closes the socket with 4403. Returns its remover."""
        self.checks.append(check)
        return lambda: self.checks.remove(check) if check in self.checks else None


class LiveTransport(BaseGraphQLTransportWSHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_subscriptions_per_connection = MAX_SUBSCRIPTIONS
        self.ws = self.websocket.ws
        self.state = self.ws.app.state
        self.settings = self.state.settings
        self.authorization: str | None = None
        self.digest: str | None = None
        self.slot: str | None = None  # this socket's place in BILLING_WS_MAX_PER_CREDENTIAL (services.live.slots)
        self.ping_task: asyncio.Task | None = None
        self.closing: asyncio.Task | None = None
        self.live = LiveSocket(self)
        self.context.live = self.live
        self.shared: set[Member] = set()  # this socket's operations in shared executions (graphql.live.groups)

    # -- connection ------------------------------------------------------------------------
    async def handle_connection_init(self, message: dict) -> None:
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload")
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        if self.connection_init_received:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        authorization = payload.get("Authorization", payload.get("authorization"))
        portal_token = payload.get("portalToken")
        if authorization is None and isinstance(portal_token, str) and portal_token.strip():
            authorization = PORTAL_CREDENTIAL + portal_token.strip()
        if not isinstance(authorization, str) or not authorization.strip():
            await self.websocket.close(UNAUTHORIZED, 'Unauthorized: send {"Authorization": "Bearer <token>"} '
                                                     "in connection_init's payload")
            return
        db = self.state.db
        try:
            now = await current_time(db, test_clock=self.settings.test_clock)
            actor = await self._actor_of(authorization, now)
        except AuthenticationFailed as exc:
            await self.websocket.close(UNAUTHORIZED, f"Unauthorized: {exc}"[:120])
            return
        except Exception:  # the database could not answer now (pool exhausted, restarting): not the caller's fault
            log.exception("live: checking a socket's credential failed")
            await self.websocket.close(TRY_AGAIN_LATER, "The credential could not be checked now: try again later")
            return
        if actor is None:
            await self.websocket.close(UNAUTHORIZED, "Unauthorized")
            return
        digest = credential_digest(authorization)
        slot = await self.state.live_sockets.take(digest, self.settings.ws_max_per_credential)
        if slot is None:
            await self.websocket.close(TOO_MANY_SOCKETS, f"At most {self.settings.ws_max_per_credential} sockets per "
                                                         "credential (BILLING_WS_MAX_PER_CREDENTIAL)")
            return
        self.authorization, self.digest, self.slot = authorization, digest, slot
        self.context.actor, self.context.auth_error, self.context.now = actor, None, now
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        self.state.live_guard.watch(self, self.recheck)
        if self.settings.ws_ping_seconds:
            self.ping_task = asyncio.create_task(self._ping())

    async def _actor_of(self, credential: str, now) -> Actor | None:
        """The actor behind an ``Authorization`` value, or a portal link (``PORTAL_CREDENTIAL`` + token)."""
        if credential.startswith(PORTAL_CREDENTIAL):
            try:
                return await access.portal_reader(self.state.db, credential.removeprefix(PORTAL_CREDENTIAL),
                                                  settings=self.settings, now=now)
            except PortalTokenInvalid as exc:
                raise AuthenticationFailed(str(exc)) from None
        return await authenticate(self.state.db, credential, jwt_secret=self.settings.jwt_secret, now=now)

    @property
    def portal(self) -> bool:
        """A socket opened with a portal link: it may run ``PORTAL_USAGE`` and nothing else."""
        return self.authorization is not None and self.authorization.startswith(PORTAL_CREDENTIAL)

    async def _ping(self) -> None:
        with suppress(Exception):
            while True:
                await asyncio.sleep(self.settings.ws_ping_seconds)
                await self.send_message({"type": "ping"})

    async def recheck(self, known: dict) -> None:
        """The credential again (answers shared by a round's sockets in ``known``), then the checks
        of the subscriptions: revoked, expired or no longer allowed closes with 4403."""
        if self.authorization is None or self.closing is not None:
            return
        answer = known.get(self.authorization)
        if answer is None:
            try:
                now = await current_time(self.state.db, test_clock=self.settings.test_clock)
                answer = await self._actor_of(self.authorization, now)
            except AuthenticationFailed:
                answer = False
            known[self.authorization] = answer
        actor = self.context.actor
        if answer is False or answer is None or (answer.role, answer.organization_id) != (actor.role,
                                                                                          actor.organization_id):
            self.close_soon(FORBIDDEN, "Forbidden: the credential was revoked, expired or changed")
            return
        for check in [*self.live.checks, *{check for member in list(self.shared) for check in member.group.checks}]:
            if not await check():
                self.close_soon(FORBIDDEN, "Forbidden: access to what this socket subscribed to was withdrawn")
                return

    def close_soon(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self.websocket.close(code, reason))

    async def shutdown(self) -> None:
        self.state.live_guard.forget(self)
        if self.digest is not None and self.slot is not None:
            slot, self.slot = self.slot, None
            await self.state.live_sockets.give_back(self.digest, slot)
        if self.ping_task is not None:
            self.ping_task.cancel()
        await super().shutdown()

    # -- operations ------------------------------------------------------------------------
    async def handle_subscribe(self, message: dict) -> None:
        if not self.connection_acknowledged:
            await self.websocket.close(code=UNAUTHORIZED, reason="Unauthorized")
            return
        operation_id, payload = message.get("id"), message.get("payload")
        if not isinstance(operation_id, str) or not isinstance(payload, dict):
            await self.handle_invalid_message("A subscribe message needs an id (string) and a payload (object)")
            return
        if operation_id in self.operations:
            await super().handle_subscribe(message)  # 4409, as the protocol says
            return
        limiter = self.state.rate_limiter
        if limiter is not None and self.digest is not None:
            retry_after = await limiter.hit("credential:" + self.digest)
            if retry_after is not None:
                await self._refuse(operation_id, f"Rate limit exceeded: try again in {retry_after} s.", "RATE_LIMITED",
                                   retryAfter=retry_after)
                return
        wanted = requested_id(payload)
        documents: TrustedDocuments = self.state.live_documents
        if wanted is not None:
            body = documents.bodies.get(wanted)
            if body is None or (isinstance(payload.get("query"), str) and payload["query"] != body):
                await self._refuse(operation_id, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
                return
            payload = {**payload, "query": body}
        if not isinstance(payload.get("query"), str):
            await self._refuse(operation_id, "The subscribe payload needs `query` (or a registered `documentId`).",
                               "BAD_REQUEST")
            return
        actor = self.context.actor
        if self.portal:  # the portal's own document only (server-defined: trusted whatever the mode)
            if wanted is not None or payload["query"] != PORTAL_USAGE:
                await self._refuse(operation_id, "Forbidden: a billing portal link may only follow its organization's "
                                                 "usage (the portal's usageUpdated document).", "FORBIDDEN")
                return
        elif wanted is None and (documents.require == "all" or (documents.require == "partner"
                                                              and actor.role is Role.PARTNER)):
            if document_id(payload["query"]) not in documents.bodies:  # as graphql.persisted refuses it over HTTP
                await self._refuse(operation_id, "Only registered documents are accepted here: send their documentId.",
                                   "FORBIDDEN")
                return
        try:  # the token limit, before Strawberry's parser cache (whose syntax errors end the operation unsaid)
            parse(payload["query"], max_tokens=self.settings.max_tokens)
        except GraphQLSyntaxError as exc:
            if "tokens" in exc.message:
                await self._refuse(operation_id, exc.message, "QUERY_TOO_COMPLEX")
            else:
                await self.websocket.close(4400, exc.message)
            return
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            await self._refuse(operation_id, "`variables` must be an object.", "BAD_REQUEST")
            return
        if not isinstance(payload.get("operationName"), str | None):
            await self._refuse(operation_id, "`operationName` must be a string or null.", "BAD_REQUEST")
            return
        payload = {"query": payload["query"], "variables": variables, "operationName": payload.get("operationName")}
        if shared_field(payload["query"], payload["operationName"], variables):
            await self._join_shared(operation_id, payload)
            return
        await super().handle_subscribe({"id": operation_id, "type": "subscribe", "payload": payload})

    async def _join_shared(self, operation_id: str, payload: dict) -> None:
        """The operation joins (or starts) the shared execution of its document, variables and access scope."""
        if len(self.operations) >= self.max_subscriptions_per_connection:
            await self._refuse(operation_id, "Subscription limit reached", "BAD_REQUEST")
            return
        key = group_key(self.context.actor, payload["query"], payload["variables"], payload["operationName"])
        member = self.state.live_groups.join(self, operation_id, key, payload, self._shared_context)
        self.shared.add(member)
        operation = Operation(self, operation_id, payload["query"], payload["variables"], payload["operationName"])
        operation.task = asyncio.create_task(run_member(self, member, operation))
        operation.task.add_done_callback(self._task_done)
        self.operations[operation_id] = operation

    def _shared_context(self) -> Context:
        """A shared execution's own context: this socket's actor (the group's access scope), fresh loaders."""
        context = self.context
        return Context(settings=context.settings, db=context.db, actor=context.actor, auth_error=None,
                       now=context.now, loaders=Loaders(context.db), gateways=context.gateways, live=self.live)

    async def _refuse(self, operation_id: str, message: str, code: str, **extensions: Any) -> None:
        error = GraphQLError(message, extensions={"code": code, **extensions})
        await self.send_message({"id": operation_id, "type": "error", "payload": [error.formatted]})
