"""GET /metrics (Prometheus text format) and the per-request metrics middleware and JSON log line.

``/metrics`` asks for ``Authorization: Bearer <BILLING_METRICS_TOKEN>`` when that setting is
set (open otherwise, for a scraper on a private network), and is never rate limited.

The middleware costs one ``perf_counter`` pair, a context variable and a few metric updates per
GraphQL request (``POST /graphql``); other routes only have their status looked at, to count
rate-limit refusals. With ``BILLING_LOG_FORMAT=json`` it writes one JSON line per GraphQL
request to the ``billing_graphql.requests`` logger (stderr):
``{"ts", "event": "graphql_request", "operation", "outcome", "status", "role", "organization",
"duration_ms", "statements"}``.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from billing_graphql import metrics
from billing_graphql.settings import Settings

request_log = logging.getLogger("billing_graphql.requests")


@get("/metrics", opt={"exclude_from_rate_limit": True}, include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    token = request.app.state.settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return Response(b"metrics need 'Authorization: Bearer <BILLING_METRICS_TOKEN>'\n", status_code=401,
                            media_type="text/plain", headers={"www-authenticate": "Bearer"})
    body, content_type = metrics.render()
    # Litestar adds "; charset=utf-8" to a text/ type: the one prometheus-client names is left out.
    media_type = "; ".join(part for part in content_type.split("; ") if not part.lower().startswith("charset="))
    return Response(body, media_type=media_type)


def _json_log_handler() -> None:
    if not any(getattr(handler, "billing_json", False) for handler in request_log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.billing_json = True  # type: ignore[attr-defined]
        request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False


def log_line(record: metrics.RequestRecord, status: int, duration: float) -> str:
    return json.dumps({
        "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "event": "graphql_request",
        "operation": record.operation,
        "outcome": record.outcome,
        "status": status,
        "role": record.role,
        "organization": record.organization,
        "duration_ms": round(duration * 1000, 3),
        "statements": record.statements,
    }, separators=(",", ":"))


def request_metrics_middleware(settings: Settings):
    """The middleware factory for ``Litestar(middleware=[...])``; put it first (outermost) so it
    sees the rate limiter's 429s."""
    json_log = settings.log_format == "json"
    if json_log:
        _json_log_handler()
    metrics.install_statement_counter()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500
            is_graphql = scope["path"] == "/graphql" and scope["method"] == "POST"

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            # A GraphQL request is recorded (its operation, outcome, duration, statements); any other only counted
            # when the rate limit refused it.
            record = metrics.RequestRecord() if is_graphql else None
            token = metrics.CURRENT_REQUEST.set(record) if record is not None else None
            started = time.perf_counter()
            try:
                await app(scope, receive, send_status)
            except Exception as exc:  # Litestar's rate limiter raises its 429; the handler outside sends it
                status = getattr(exc, "status_code", 500)
                raise
            finally:
                if status == 429:
                    metrics.record_rate_limited()
                if record is not None:
                    duration = time.perf_counter() - started
                    metrics.CURRENT_REQUEST.reset(token)
                    if status == 429:
                        record.outcome, record.operation = "rate_limited", "none"
                    elif status >= 500:
                        record.outcome = "server_error"
                    metrics.observe_request(record.operation, record.outcome, duration, record.statements)
                    if json_log:
                        request_log.info(log_line(record, status, duration))

        return middleware

    return factory
