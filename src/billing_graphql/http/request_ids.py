"""Request ids and the log of unexpected errors, for every route.

Each HTTP request gets an id: the caller's ``X-Request-ID`` when it is a plain token (letters,
digits, ``.``, ``_``, ``:``, ``-``; at most 128), as a load balancer sets it, else a fresh one (32
hex digits). It is sent back in ``X-Request-ID`` on every answer, so a masked 500 can be quoted.

An unexpected error (any exception that is not an HTTP error below 500) is logged once, at ERROR on
the ``billing_graphql.errors`` logger, with the request id in the message and as the record's
``request_id``, and with its traceback, by whichever layer meets it first: the app's
``after_exception`` hook (``log_route_error``) for a route that raised, the middleware for one that
failed after its answer began (a broken stream), GraphQL's error masking for a resolver. The
answer stays masked (``Internal Server Error`` / ``Unexpected error.``): no trace leaves.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar, Token
from typing import Any

from litestar.exceptions import HTTPException
from litestar.types import Scope

log = logging.getLogger("billing_graphql.errors")

HEADER = b"x-request-id"
_USABLE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_CURRENT: ContextVar[str | None] = ContextVar("billing_request_id", default=None)
_LOGGED = "_billing_logged"


def current_request_id() -> str | None:
    """The id of the request being served (None outside one)."""
    return _CURRENT.get()


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER and _USABLE.fullmatch(value):
            return value.decode("ascii")
    return secrets.token_hex(16)  # a fifth of uuid4().hex's cost, the same 32 hex digits


def is_unexpected(error: BaseException) -> bool:
    return not (isinstance(error, HTTPException) and error.status_code < 500)


def log_unexpected(error: BaseException, request_id: str | None, where: str) -> None:
    """Log ``error`` once (a second layer meeting the same exception stays silent)."""
    if getattr(error, _LOGGED, False):
        return
    try:
        setattr(error, _LOGGED, True)
    except AttributeError:
        pass
    log.error("unexpected error in %s (request %s)", where, request_id, exc_info=error,
              extra={"request_id": request_id})


def _where(scope: Scope) -> str:
    # The route's template, never the path itself: a portal path holds the customer's link.
    return f"{scope.get('method', '')} {scope.get('path_template') or '(no route)'}"


async def log_route_error(error: Exception, scope: Scope) -> None:
    """The app's ``after_exception`` hook."""
    if is_unexpected(error):
        state: dict[str, Any] = scope.get("state") or {}
        log_unexpected(error, state.get("request_id") or current_request_id(), _where(scope))


def enter_request(scope: Scope) -> tuple[str, Token]:
    """The request's id, kept in its state and as the current one until ``leave_request``."""
    request_id = _request_id(scope)
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id, _CURRENT.set(request_id)


def leave_request(token: Token) -> None:
    _CURRENT.reset(token)


def log_failure(error: Exception, request_id: str, scope: Scope) -> None:
    """Log what escaped the app (a route that failed after its answer began: a broken stream) when unexpected."""
    cause: BaseException = error.__cause__ if error.__cause__ is not None else error
    while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:  # a stream's task group
        cause = cause.exceptions[0]
    if is_unexpected(cause):
        log_unexpected(cause, request_id, _where(scope))
