"""The GraphQL route: Strawberry's Litestar controller, with request errors shaped as GraphQL.

A body that is not a JSON object (``null``, ``5``, ``"..."``), malformed JSON, a ``query``
that is not a string, and the like are HTTP 400 with ``{"errors": [{"message", "extensions":
{"code": "BAD_REQUEST"}}]}``, never a 500 or a bare text line; and every error of a GraphQL
answer carries ``extensions.code`` (``INTERNAL_SERVER_ERROR`` when nothing more precise was set).
A body over ``BILLING_MAX_BODY_BYTES`` (announced or streamed) is HTTP 413 with ``{"errors": [{"message",
"extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse

from cross_web import HTTPException
from litestar import Request, Response, post
from litestar.background_tasks import BackgroundTasks
from litestar.di import Provide
from litestar.enums import MediaType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_200_OK
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState
from strawberry.litestar import make_graphql_controller
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from billing_graphql.graphql.compiled import CompiledDocuments, Fallback
from billing_graphql.graphql.context import Context, build_context, build_ws_context, context_of
from billing_graphql.graphql.live.schema import OVER_WEBSOCKET
from billing_graphql.graphql.live.transport import LimitedWebSocketAdapter, LiveTransport
from billing_graphql.graphql.error_codes import INTERNAL
from billing_graphql.graphql.observability import note_operation
from billing_graphql.metrics import operation_label

BAD_REQUEST = "BAD_REQUEST"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


def graphql_error_body(message: str, code: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}


def graphql_error_response(status_code: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        graphql_error_body(message, code), status_code=status_code, media_type=MediaType.JSON, headers=headers
    )


def payload_too_large(request: Request[Any, Any, Any]) -> Response:
    """413 as a GraphQL request error: ``errors`` only, no ``data`` (nothing was executed)."""
    limit = request.app.state.settings.max_body_bytes
    message = f"The request body is larger than {limit} bytes (BILLING_MAX_BODY_BYTES)."
    return Response({"errors": [{"message": message, "extensions": {"code": PAYLOAD_TOO_LARGE}}]},
                    status_code=413, media_type=MediaType.JSON)


@lru_cache(maxsize=512)
def is_subscription(query: str, operation_name: str | None) -> bool:
    """Whether the operation a request runs is a subscription (False for text that does not parse: the
    request's own answer says why)."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operations = [item for item in document.definitions if isinstance(item, OperationDefinitionNode)]
    chosen = next((item for item in operations
                   if operation_name is None or (item.name is not None and item.name.value == operation_name)), None)
    return chosen is not None and chosen.operation is OperationType.SUBSCRIPTION


async def asks_subscription(request: Request[Any, Any, Any]) -> bool:
    """A subscription sent over HTTP (POST, or GET's multipart): refused, they run over WebSocket (Strawberry
    would run a plain POST's subscription as a query, and fail on its generator)."""
    if request.method == "GET":
        query, name = request.query_params.get("query"), request.query_params.get("operationName")
    else:
        body = await request.body()
        if b"subscription" not in body:
            return False
        try:
            data = orjson.loads(body)
        except ValueError:
            return False
        if not isinstance(data, dict):
            return False
        query, name = data.get("query"), data.get("operationName")
    return isinstance(query, str) and "subscription" in query and is_subscription(query, name if isinstance(name, str)
                                                                                  else None)


async def no_root_value() -> None:
    return None


async def http_context(request: Request[Any, Any, Any], root_value: None) -> Context:
    """The request's context, carrying the request. The response Strawberry fills in (status, headers) is made
    only where the generic path runs (``sub_response``): a compiled answer is written without it."""
    context = await build_context(request)
    context.request = request
    return context


def sub_response(context: Context, request: Request[Any, Any, Any]) -> Response:
    """The context's response for Strawberry to fill in, made on first use and kept in the request's scope
    (``get_sub_response``: Strawberry's own keeps it on the controller, which concurrent requests share)."""
    if context.response is None:
        context.response = Response({}, background=BackgroundTasks([]))
        request.scope["graphql_sub_response"] = context.response
    return context.response


async def http_response(context: Context) -> Response:
    return sub_response(context, context.request)


# Strawberry's controller builds its response in a worker thread (`Provide(..., sync_to_thread=True)`)
# and Litestar resolves dependencies of the same depth in a task group: a thread hop and two tasks a
# request, ~20% of a cheap query's CPU. Here each depends on the one before, so they are plain awaits:
# root value, then context, then response. (A WebSocket takes `context_ws` and the root value.)
DEPENDENCIES = {
    "root_value": Provide(no_root_value),
    "context": Provide(http_context),
    "response": Provide(http_response),
    "context_ws": Provide(build_ws_context),
}


CONTEXT = "graphql_context"  # the scope's key of the context ``compiled_answers`` built, for the handler


def compiled_answers(compiled: CompiledDocuments) -> Callable[[ASGIApp], ASGIApp]:
    """The controller's middleware: a POST with a JSON body whose document has a plan is answered on its plan
    before Litestar makes a Request, checks the handler's signature and builds a Response (those were a fifth of
    ``{ viewer { role } }``'s time in process). Anything else, and a request its plan hands back (``Fallback``),
    goes on to the handler with the body read (Litestar's ``ScopeState.body``) and the context built
    (``scope[CONTEXT]``): the generic path answers it. A body over BILLING_MAX_BODY_BYTES goes on unread
    (announced) or replayed (streamed), and the handler answers 413. Bodies are JSON by orjson, as
    ``app._orjson_controller``'s."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await app(scope, receive, send)
                return
            authorization = content_type = length = None
            for name, value in scope["headers"]:
                if name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
                elif name == b"content-type" and content_type is None:
                    content_type = value
                elif name == b"content-length":
                    length = value
            state = scope["app"].state
            limit = state.settings.max_body_bytes
            if content_type is None or b"json" not in content_type or (
                    length is not None and (not length.isdigit() or int(length) > limit)):
                await app(scope, receive, send)
                return
            body, receive = await _read_body(receive, limit)
            if body is None:  # over the limit, or the client went away: the handler answers
                await app(scope, receive, send)
                return
            ScopeState.from_scope(scope).body = body
            context = scope[CONTEXT] = await context_of(state, scope, authorization)
            try:
                request = orjson.loads(body)
            except ValueError:
                request = None
            plan = compiled.plan_for(request, context)
            if plan is None:
                await app(scope, receive, send)
                return
            try:
                data = await compiled.execute(plan, request, context, None)
            except Fallback:
                await app(scope, receive, send)
                return
            scope.pop(CONTEXT)
            note_operation(operation_label(plan.name), context, "ok")
            answer = orjson.dumps(data)
            await send({"type": "http.response.start", "status": HTTP_200_OK,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer, "more_body": False})

        return middleware

    return factory


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The request's body, and a receive for what follows; None, and a receive replaying what was read, for a
    body over ``limit`` bytes or a client gone before its end."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            break
        if not message.get("more_body", False):
            return b"".join(item.get("body", b"") for item in messages), receive
    pending = iter(messages)

    async def replay() -> Message:
        return next(pending, None) or await receive()

    return None, replay


def build_graphql_controller(schema: Any, compiled: CompiledDocuments | None = None, **options: Any) -> type:
    """``compiled``: the plans of the query documents (registered ones, and any other planned when first
    seen); a request whose document has one runs on its plan, and on the generic path whenever the plan
    cannot answer it (``graphql.compiled``).

    WebSocket: ``graphql-transport-ws`` only (the legacy ``graphql-ws`` is closed with 4406), handled by
    ``graphql.live.transport.LiveTransport``."""
    base = make_graphql_controller(schema, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), **options)

    class BillingGraphQLController(base):  # type: ignore[misc,valid-type]
        graphql_transport_ws_handler_class = LiveTransport
        websocket_adapter_class = LimitedWebSocketAdapter
        # Dependencies, not overriding handlers: Litestar drops a WebSocket route registered before the HTTP
        # handlers of the same path. A socket's context has no actor until connection_init.
        dependencies: ClassVar[dict] = DEPENDENCIES
        middleware: ClassVar[list] = [compiled_answers(compiled)] if compiled is not None else []

        @post(status_code=HTTP_200_OK)
        async def handle_http_post(self, request: Request[Any, Any, Any]) -> ASGIApp:
            """POST on the generic path (a document with a plan was answered before, by ``compiled_answers``):
            Strawberry's handler without Litestar's dependency injection (its signature models and three providers
            cost a sixth of a small query's time); the context is the one ``compiled_answers`` built, else built as
            the providers build it."""
            context = request.scope.pop(CONTEXT, None)
            if context is None:
                context = await build_context(request)
            context.request = request
            return await self.execute_request(request, context, None)

        async def get_sub_response(self, request: Request[Any, Any, Any]) -> Response:
            return request.scope["graphql_sub_response"]

        def parse_json(self, data: str | bytes) -> Any:
            try:
                parsed = self.decode_json(data)
            except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
                raise HTTPException(400, "Unable to parse request body as JSON") from None
            if not isinstance(parsed, dict | list):
                raise HTTPException(400, 'The request body must be a JSON object: {"query": "...", "variables": {...}}.')
            if isinstance(parsed, dict) and not isinstance(parsed.get("operationName"), str | None):
                raise HTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null, if provided."
                )
            return parsed

        async def execute_request(self, request: Request[Any, Any, Any], context: Any, root_value: Any) -> Response:
            try:
                return await self.answer(request, context, root_value)
            except RequestEntityTooLarge:
                return payload_too_large(request)

        async def answer(self, request: Request[Any, Any, Any], context: Any, root_value: Any) -> Response:
            if await asks_subscription(request):
                return graphql_error_response(400, OVER_WEBSOCKET, BAD_REQUEST)
            sub_response(context, request)
            try:
                return await self.run(request, context=context, root_value=root_value)
            except HTTPException as exc:
                code = BAD_REQUEST if exc.status_code == 400 else f"HTTP_{exc.status_code}"
                return graphql_error_response(exc.status_code, exc.reason, code)

        async def process_result(self, request: Request[Any, Any, Any], result: Any) -> Any:
            data = await super().process_result(request, result)
            for error in data.get("errors") or ():
                extensions = error.setdefault("extensions", {})
                extensions.setdefault("code", INTERNAL)
            return data

    return BillingGraphQLController
