"""The application factory: Litestar serving the Strawberry schema."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry
from litestar.types import ASGIApp, Receive, Scope, Send
from strawberry.litestar import make_graphql_controller

from billing_graphql.db.engine import Database
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.graphql.context import build_context
from billing_graphql.graphql.persisted import with_document_id
from billing_graphql.graphql.schema import build_schema
from billing_graphql.http.health import health
from billing_graphql.http.invoice_pdf import invoice_pdf
from billing_graphql.http.payments_csv import payments_csv
from billing_graphql.http.portal import billing_portal, billing_portal_invoice_pdf
from billing_graphql.http.webhooks import razorpay_webhook
from billing_graphql.settings import Settings


def rate_limit_identity(request: Request[Any, Any, Any]) -> str:
    """Count requests per credential (hashed), or per address when none is sent."""
    authorization = request.headers.get("authorization")
    if authorization:
        return "credential:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]
    return "address:" + get_remote_address(request)


def read_scope_middleware(app: ASGIApp) -> ASGIApp:
    """Each HTTP request reads through one shared read session (``Database.request_scope``)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        async with scope["app"].state.db.request_scope():
            await app(scope, receive, send)

    return middleware


def _orjson_controller(controller: type) -> type:
    """Strawberry's controller with orjson for request and response bodies (the standard library's
    json was ~3% of the invoices page), taking a registered document's id in place of its text."""

    class GraphQLController(controller):
        def encode_json(self, data: object) -> bytes:
            return orjson.dumps(data)

        def decode_json(self, data: str | bytes) -> object:
            return orjson.loads(data)

        def parse_json(self, data: str | bytes) -> object:
            return with_document_id(super().parse_json(data))  # {"documentId": ...} as Apollo's extension

    return GraphQLController


def _stores(settings: Settings) -> StoreRegistry:
    if settings.redis_url:
        from litestar.stores.redis import RedisStore

        return StoreRegistry(default_factory=lambda name: RedisStore.with_client(url=settings.redis_url, namespace=name))
    return StoreRegistry(default_factory=lambda name: MemoryStore())


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    gateways: GatewayRegistry | None = None,
    freeze_gc: bool = True,
) -> Litestar:
    settings = settings or Settings.from_env()
    gateways = gateways or GatewayRegistry(settings)
    schema = build_schema(settings)
    controller = _orjson_controller(make_graphql_controller(
        schema,
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=False,
        context_getter=build_context,
    ))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = db is None
        if owned:
            app.state.db = Database.from_url(settings.database_url)
        if freeze_gc:
            # Long-lived start-up objects would otherwise be rescanned by every gen-2 collection.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if owned:
                await app.state.db.dispose()

    middleware: list = [read_scope_middleware]
    if settings.rate_limit:
        middleware.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit),
                identifier_for_request=rate_limit_identity,
                exclude_opt_key="exclude_from_rate_limit",
            ).middleware
        )
    state = {"settings": settings, "gateways": gateways}
    if db is not None:
        state["db"] = db  # handed in (tests, embedding): usable without running the lifespan
    return Litestar(
        route_handlers=[
            controller,
            health,
            invoice_pdf,
            payments_csv,
            billing_portal,
            billing_portal_invoice_pdf,
            razorpay_webhook,
        ],
        state=State(state),
        lifespan=[lifespan],
        middleware=middleware,
        stores=_stores(settings),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
