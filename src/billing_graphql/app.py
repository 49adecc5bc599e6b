"""The application factory: Litestar serving the Strawberry schema."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import strawberry
from litestar import Litestar
from litestar.datastructures import State
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry

from billing_graphql.db.engine import Database
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.graphql.persisted import TrustedDocuments, with_document_id
from billing_graphql.graphql.schema import compiled_documents, schema_for
from billing_graphql.http.graphql_controller import build_graphql_controller
from billing_graphql.http.explorer import OfflineExplorer, cdn_ide_renderer, explorer_asset, offline_ide_renderer
from billing_graphql.http.health import health
from billing_graphql.http.invoice_pay import invoice_pay
from billing_graphql.http.invoice_pdf import credit_note_pdf, invoice_pdf
from billing_graphql.http.metrics import metrics_endpoint
from billing_graphql.http.middleware import request_middleware
from billing_graphql.http.payments_csv import invoices_csv, payments_csv
from billing_graphql.http.portal import portal_routes
from billing_graphql.http.rate_limit import RateLimiter
from billing_graphql.http.request_ids import log_route_error
from billing_graphql.http.webhooks import gateway_webhook
from billing_graphql.graphql.live.groups import LiveGroups
from billing_graphql.services.live.hub import Guard, Hub
from billing_graphql.services.live.slots import SocketSlots
from billing_graphql.settings import Settings


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


def background_tasks(app: Litestar, settings: Settings) -> list[Callable[[], Awaitable[None]]]:
    """The workers ``serve`` runs in-process beside the HTTP server (none with ``--no-worker``,
    i.e. ``BILLING_WORKERS=0``): each a coroutine function looping until cancelled."""
    from billing_graphql.jobs.billing_run import billing_worker
    from billing_graphql.jobs.webhook_delivery import run_webhook_worker

    return [
        lambda: billing_worker(app.state.db, settings, app.state.gateways),
        lambda: run_webhook_worker(app.state.db, settings),
    ]


def live_state(settings: Settings) -> dict:
    """What an app keeps of its open sockets: their slots per credential, the guard re-checking
    their credentials, and the groups sharing one execution per event."""
    return {"live_sockets": SocketSlots(settings.redis_url, settings.database_url), "live_guard": Guard(),
            "live_groups": LiveGroups()}


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    gateways: GatewayRegistry | None = None,
    schema: strawberry.Schema | None = None,
    freeze_gc: bool = True,
    workers: bool | None = None,
) -> Litestar:
    """``workers``: start the background tasks (default: ``settings.run_workers``). ``db``,
    ``gateways`` and an already built ``schema`` (of these settings) may be handed in; without one,
    the app serves the process's schema of these settings' limits (``schema_for``)."""
    settings = settings or Settings.from_env()
    gateways = gateways or GatewayRegistry(settings)
    run_workers = settings.run_workers if workers is None else workers
    schema = schema or schema_for(settings)
    compiled = compiled_documents(schema, settings) if settings.compiled_documents else None
    controller = _orjson_controller(build_graphql_controller(
        schema,
        compiled,
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=False,
    ))
    explorer = None
    if settings.graphiql and settings.graphiql_assets_dir:
        explorer = OfflineExplorer.from_directory(settings.graphiql_assets_dir)
        controller.render_graphql_ide = offline_ide_renderer(explorer)
    elif settings.graphiql:
        controller.render_graphql_ide = cdn_ide_renderer()  # says so when unpkg cannot be reached

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = db is None
        if owned:
            app.state.db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
        app.state.live_hub = Hub(app.state.db, database_url=settings.database_url)
        await app.state.live_hub.start()  # this process's one LISTEN connection (services.live.hub)
        tasks = [asyncio.create_task(start()) for start in background_tasks(app, settings)] if run_workers else []
        if freeze_gc:
            # Long-lived start-up objects would otherwise be rescanned by every gen-2 collection.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await app.state.live_guard.stop()
            await app.state.live_groups.stop()
            await app.state.live_sockets.close()
            await app.state.live_hub.stop()
            if rate_limiter is not None:
                await rate_limiter.counter.close()
            if owned:
                await app.state.db.dispose()

    # outermost (``http.middleware``): the request's id, its metrics (which see the rate limiter's 429s), its one
    # read session
    middleware: list = [request_middleware(settings)]
    rate_limiter = RateLimiter(settings) if settings.rate_limit else None
    if rate_limiter is not None:
        middleware.append(rate_limiter.middleware)
    state = {"settings": settings, "gateways": gateways, "rate_limiter": rate_limiter, "explorer": explorer,
             "compiled": compiled, **live_state(settings),
             "live_documents": TrustedDocuments.load(require=settings.trusted_documents)}
    if db is not None:
        state["db"] = db  # handed in (tests, embedding): usable without running the lifespan
    return Litestar(
        route_handlers=[
            controller,
            health,
            invoice_pdf,
            credit_note_pdf,
            invoice_pay,
            payments_csv,
            invoices_csv,
            gateway_webhook,
            metrics_endpoint,
            explorer_asset,
            *portal_routes(),
        ],
        state=State(state),
        lifespan=[lifespan],
        middleware=middleware,
        stores=_stores(settings),
        request_max_body_size=settings.max_body_bytes,
        after_exception=[log_route_error],  # every unexpected error, once, with the request id
        # No OpenAPI pages: Litestar's default served /schema (Swagger, ReDoc, ... from a CDN) describing
        # every route, the portal's and the webhooks' included. The API is GraphQL: schema.graphql.
        openapi_config=None,
        debug=False,
    )
