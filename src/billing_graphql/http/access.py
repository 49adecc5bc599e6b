"""Who is calling a non-GraphQL route: the same credentials as GraphQL (Bearer API key or
session token), checked against the test clock when it is on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from billing_graphql.db.engine import Database
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import MANAGERS, Role
from billing_graphql.services.platform.auth import AuthenticationFailed, authenticate_request
from billing_graphql.services.platform.clock import current_time
from billing_graphql.settings import Settings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="billing"'}


def app_db(request: Request[Any, Any, Any]) -> Database:
    return request.app.state.db


def app_settings(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings


async def request_now(request: Request[Any, Any, Any]) -> datetime:
    return await current_time(app_db(request), test_clock=app_settings(request).test_clock)


async def require_actor(
    request: Request[Any, Any, Any], now: datetime, roles: frozenset[Role] = MANAGERS
) -> Actor:
    """The caller, holding one of ``roles``: 401 without valid credentials, 403 without the role."""
    authorization = request.headers.get("authorization")
    try:
        actor = await authenticate_request(
            request.scope.setdefault("state", {}), app_db(request), authorization,
            jwt_secret=app_settings(request).jwt_secret, now=now,
        )
    except AuthenticationFailed as exc:
        raise NotAuthorizedException(detail=str(exc), headers=_CHALLENGE) from None
    if actor is None:
        raise NotAuthorizedException(
            detail="Authentication required: send 'Authorization: Bearer <API key or session token>'.",
            headers=_CHALLENGE,
        )
    if actor.role not in roles:
        names = ", ".join(sorted(role.value for role in roles))
        raise PermissionDeniedException(detail=f"Forbidden: this needs one of the roles {names}.")
    return actor


def organization_scope(actor: Actor) -> uuid.UUID | None:
    """The organization the actor's reads are limited to; None for super-admins (any)."""
    return None if actor.is_super_admin else actor.organization_id
