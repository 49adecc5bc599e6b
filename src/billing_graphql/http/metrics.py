"""GET /metrics (Prometheus text format), and each request's metrics and JSON log line (kept by ``http.middleware``).

``/metrics`` asks for ``Authorization: Bearer <BILLING_METRICS_TOKEN>`` when that setting is
set (open otherwise, for a scraper on a private network), and is never rate limited.

Each request costs one ``perf_counter`` pair, a context variable and a few metric updates per
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
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get

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


def json_log_enabled(settings: Settings) -> bool:
    """Whether each GraphQL request writes its JSON line (``BILLING_LOG_FORMAT=json``; its handler installed)."""
    if settings.log_format != "json":
        return False
    _json_log_handler()
    return True


def finish_record(record: metrics.RequestRecord, status: int, duration: float, json_log: bool) -> None:
    """A GraphQL request's metrics once it is answered with ``status`` (and its JSON line)."""
    if status == 429:
        record.outcome, record.operation = "rate_limited", "none"
    elif status >= 500:
        record.outcome = "server_error"
    metrics.observe_request(record.operation, record.outcome, duration, record.statements)
    if json_log:
        request_log.info(log_line(record, status, duration))
