"""The application factory: Litestar serving the Strawberry schema."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry

from billing_graphql.db.engine import Database
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.graphql.context import build_context
from billing_graphql.graphql.schema import build_schema
from billing_graphql.http.graphql_controller import build_graphql_controller
from billing_graphql.http.health import health
from billing_graphql.http.invoice_pdf import invoice_pdf
from billing_graphql.http.payments_csv import payments_csv
from billing_graphql.http.portal import billing_portal, billing_portal_invoice_pdf
from billing_graphql.http.rate_limit import RateLimiter
from billing_graphql.http.webhooks import razorpay_webhook
from billing_graphql.settings import Settings


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
    controller = build_graphql_controller(
        schema,
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=False,
        context_getter=build_context,
    )

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
            if rate_limiter is not None:
                await rate_limiter.counter.close()
            if owned:
                await app.state.db.dispose()

    middleware = []
    rate_limiter = RateLimiter(settings) if settings.rate_limit else None
    if rate_limiter is not None:
        middleware.append(rate_limiter.middleware)
    state = {"settings": settings, "gateways": gateways, "rate_limiter": rate_limiter}
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
