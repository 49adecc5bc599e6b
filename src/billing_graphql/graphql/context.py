"""The request context: settings, database, actor, clock reading and loaders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, WebSocket
from strawberry.litestar import BaseContext
from strawberry.types import Info as StrawberryInfo

from billing_graphql.db.engine import Database
from billing_graphql.domain.actors import Actor
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.graphql.loaders import Loaders
from billing_graphql.services.platform.auth import AuthenticationFailed, authenticate_request
from billing_graphql.services.platform.clock import current_time
from billing_graphql.settings import Settings


class Context(BaseContext, kw_only=True):
    settings: Settings
    db: Database
    actor: Actor | None
    auth_error: str | None
    now: datetime
    loaders: Loaders
    gateways: GatewayRegistry
    live: Any = None  # over WebSocket: the socket's graphql.live.transport.LiveSocket


Info = StrawberryInfo[Context, Any]


async def build_context(request: Request[Any, Any, Any]) -> Context:
    return await context_of(request.app.state, request.scope, request.headers.get("authorization"))


async def context_of(state: Any, scope: Any, authorization: str | None) -> Context:
    """An HTTP request's context, from the app's ``state``, the request's ``scope`` and its Authorization header."""
    settings: Settings = state.settings
    db: Database = state.db
    now = await current_time(db, test_clock=settings.test_clock)
    actor: Actor | None = None
    auth_error: str | None = None
    try:
        # The request's state carries the answer (the rate limiter may have checked the
        # credential already, and reads the answer after the response).
        actor = await authenticate_request(scope.setdefault("state", {}), db, authorization,
                                           jwt_secret=settings.jwt_secret, now=now)
    except AuthenticationFailed as exc:
        auth_error = str(exc)
    return Context(
        settings=settings, db=db, actor=actor, auth_error=auth_error, now=now, loaders=Loaders(db),
        gateways=state.gateways,
    )


async def build_ws_context(socket: WebSocket) -> Context:
    """A WebSocket's context: no actor until ``connection_init`` authenticates (graphql.live.transport)."""
    state = socket.app.state
    now = await current_time(state.db, test_clock=state.settings.test_clock)
    return Context(settings=state.settings, db=state.db, actor=None, auth_error=None, now=now,
                   loaders=Loaders(state.db), gateways=state.gateways, websocket=socket)
