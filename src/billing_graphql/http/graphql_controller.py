"""The GraphQL route: Strawberry's Litestar controller, with request errors shaped as GraphQL.

A body that is not a JSON object (``null``, ``5``, ``"..."``), malformed JSON, a ``query``
that is not a string, and the like are HTTP 400 with ``{"errors": [{"message", "extensions":
{"code": "BAD_REQUEST"}}]}``, never a 500 or a bare text line; and every error of a GraphQL
answer carries ``extensions.code`` (``INTERNAL_SERVER_ERROR`` when nothing more precise was set).
A body over ``BILLING_MAX_BODY_BYTES`` (announced or streamed) is HTTP 413 with ``{"errors": [{"message",
"extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}``.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from strawberry.litestar import make_graphql_controller

from billing_graphql.graphql.compiled import CompiledDocuments, Fallback
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


def build_graphql_controller(schema: Any, compiled: CompiledDocuments | None = None, **options: Any) -> type:
    """``compiled``: the plans of the query documents (registered ones, and any other planned when first
    seen); a request whose document has one runs on its plan, and on the generic path whenever the plan
    cannot answer it (``graphql.compiled``)."""
    base = make_graphql_controller(schema, **options)

    class BillingGraphQLController(base):  # type: ignore[misc,valid-type]
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
            if compiled is not None and request.method == "POST":
                response = await self.execute_compiled(request, context, root_value)
                if response is not None:
                    return response
            try:
                return await self.run(request, context=context, root_value=root_value)
            except HTTPException as exc:
                code = BAD_REQUEST if exc.status_code == 400 else f"HTTP_{exc.status_code}"
                return graphql_error_response(exc.status_code, exc.reason, code)

        async def execute_compiled(self, request: Request[Any, Any, Any], context: Any, root_value: Any) -> Response | None:
            """The answer of the document's plan; None where the generic path must answer."""
            if "json" not in request.headers.get("content-type", ""):
                return None
            try:
                body = self.decode_json(await request.body())
            except ValueError:
                return None
            plan = compiled.plan_for(body, context)
            if plan is None:
                return None
            try:
                data = await compiled.execute(plan, body, context, root_value)
            except Fallback:
                return None
            note_operation(operation_label(plan.name), context, "ok")
            return self.create_response(data, self.temporal_response)

        async def process_result(self, request: Request[Any, Any, Any], result: Any) -> Any:
            data = await super().process_result(request, result)
            for error in data.get("errors") or ():
                extensions = error.setdefault("extensions", {})
                extensions.setdefault("code", INTERNAL)
            return data

    return BillingGraphQLController
