"""The gateway's own metrics, in the Prometheus text format (``GET /metrics``), defined once here.

Request metrics are recorded by ``http.metrics.RequestMetricsMiddleware`` (latency, SQL
statements, rate-limit refusals) together with ``graphql.observability.RequestMetrics`` (the
operation's name and outcome). The billing run and webhook delivery report through
``record_billing_run``, ``record_webhook_delivery`` and ``set_webhook_backlog``.

Names (all prefixed ``billing_graphql_``):

    requests_total{operation,outcome}           GraphQL requests; outcome: ok, client_error,
                                                server_error, rate_limited
    request_duration_seconds{operation}         histogram of the whole HTTP request
    request_sql_statements{operation}           histogram of SQL statements per request
                                                (transaction control not counted)
    rate_limited_total                          requests refused by the rate limit (HTTP 429)
    rate_limit_backend_errors_total             rate-limit counts Redis failed to keep (each such
                                                request was counted in the process instead)
    compiled_requests_total{outcome}            requests whose document has a compiled plan (a
                                                registered query, or any query planned when first
                                                seen): answered (by the plan), fallback (the
                                                generic path answered)
    plan_fallbacks_total{reason}                query requests the planner cannot handle, answered
                                                by graphql-core: directives, introspection,
                                                abstract_type, fragment_on_other_type,
                                                several_operations, no_resolver
    billing_runs_total{outcome}                 billing runs: completed, failed
    billing_run_duration_seconds                histogram of one run
    billing_run_subscriptions_total{result}     subscriptions a run handled, by result:
                                                examined, invoiced (invoices made), paid,
                                                payment_failed, canceled, skipped, error
    billing_run_lag_seconds                     how overdue the oldest subscription still due
                                                was when the last run ended (0: none)
    billing_run_last_success_timestamp_seconds  end of the last completed run (Unix time)
    webhook_deliveries_total{outcome}           delivery attempts: delivered, failed (will be
                                                retried), dead (gave up), skipped
    webhook_delivery_duration_seconds           histogram of one attempt (the HTTP call)
    webhook_delivery_lag_seconds                age of the oldest event waiting for delivery
    webhook_pending_deliveries                  events waiting for delivery

Multiprocess: with several workers each process writes its values under
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up (``billing-graphql serve --workers
N`` sets a fresh directory when the variable is not set). The variable must be set before this
module is imported.

An operation name becomes a label only if it is a GraphQL name, and only the first
``MAX_OPERATION_NAMES`` distinct names do (later ones count as "other"), so clients cannot grow
the label set without bound.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
MAX_OPERATION_NAMES = 200
LABEL_PATTERN = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")

REQUESTS = Counter(
    "billing_graphql_requests", "GraphQL requests by operation name and outcome.", ["operation", "outcome"]
)
REQUEST_DURATION = Histogram(
    "billing_graphql_request_duration_seconds", "GraphQL request latency (the whole HTTP request).", ["operation"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUEST_STATEMENTS = Histogram(
    "billing_graphql_request_sql_statements", "SQL statements sent per GraphQL request.", ["operation"],
    buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128),
)
RATE_LIMITED = Counter("billing_graphql_rate_limited", "Requests refused by the rate limit (HTTP 429).")
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "billing_graphql_rate_limit_backend_errors",
    "Rate-limit counts the shared store (Redis) failed to keep; those requests were counted per process.",
)
COMPILED_REQUESTS = Counter(
    "billing_graphql_compiled_requests", "Requests whose document has a compiled plan, by outcome.", ["outcome"]
)
PLAN_FALLBACKS = Counter(
    "billing_graphql_plan_fallbacks",
    "Query requests whose document the planner cannot handle (answered by graphql-core), by reason.", ["reason"]
)
BILLING_RUNS = Counter("billing_graphql_billing_runs", "Billing runs by outcome.", ["outcome"])
BILLING_RUN_DURATION = Histogram(
    "billing_graphql_billing_run_duration_seconds", "Duration of one billing run.",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
BILLING_RUN_SUBSCRIPTIONS = Counter(
    "billing_graphql_billing_run_subscriptions", "Subscriptions handled by billing runs, by result.", ["result"]
)
BILLING_RUN_LAG = Gauge(
    "billing_graphql_billing_run_lag_seconds",
    "How overdue the oldest subscription still due was when the last billing run ended (0: none).",
    multiprocess_mode="livemax",
)
BILLING_RUN_LAST_SUCCESS = Gauge(
    "billing_graphql_billing_run_last_success_timestamp_seconds", "When the last completed billing run ended.",
    multiprocess_mode="max",
)
WEBHOOK_DELIVERIES = Counter(
    "billing_graphql_webhook_deliveries", "Webhook delivery attempts by outcome.", ["outcome"]
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "billing_graphql_webhook_delivery_duration_seconds", "Duration of one webhook delivery attempt.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_LAG = Gauge(
    "billing_graphql_webhook_delivery_lag_seconds", "Age of the oldest event waiting for delivery (0: none).",
    multiprocess_mode="livemax",
)
WEBHOOK_PENDING = Gauge(
    "billing_graphql_webhook_pending_deliveries", "Events waiting for delivery.", multiprocess_mode="livemax"
)

# Known label values start at 0, so that rates and alerts see them before the first event.
for _outcome in ("completed", "failed"):
    BILLING_RUNS.labels(_outcome)
for _outcome in ("answered", "fallback"):
    COMPILED_REQUESTS.labels(_outcome)
for _outcome in ("delivered", "failed", "dead", "skipped"):
    WEBHOOK_DELIVERIES.labels(_outcome)

_known_operations: set[str] = set()
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass(slots=True)
class RequestRecord:
    """What one request's metrics and log line say, filled in while it runs."""

    statements: int = 0
    operation: str = "invalid"  # until the GraphQL extension names it
    outcome: str = "client_error"
    role: str | None = None
    organization: str | None = None


# Set by the HTTP middleware for each GraphQL request; tasks it starts (DataLoader batches) share it.
CURRENT_REQUEST: ContextVar[RequestRecord | None] = ContextVar("billing_graphql_request", default=None)


def _count_statement(conn, cursor, statement: str, parameters, context, executemany) -> None:
    record = CURRENT_REQUEST.get()
    if record is not None and not statement.startswith(TRANSACTION_CONTROL):
        record.statements += 1


def install_statement_counter() -> None:
    """Count the SQL statements of the current request on every engine (idempotent)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "before_cursor_execute", _count_statement):
        event.listen(Engine, "before_cursor_execute", _count_statement)


def operation_label(name: str | None) -> str:
    """The label for an operation name: itself when it is a GraphQL name among the first
    ``MAX_OPERATION_NAMES`` seen, "anonymous" without a name, "other" otherwise."""
    if not name:
        return "anonymous"
    if name in _known_operations:
        return name
    if len(_known_operations) >= MAX_OPERATION_NAMES or not LABEL_PATTERN.match(name):
        return "other"
    _known_operations.add(name)
    return name


@lru_cache(maxsize=4 * MAX_OPERATION_NAMES)
def labelled(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, found once: ``labels`` checks the values and takes a lock on every call, a few
    microseconds of each request (the values are few: operation labels are bounded, ``operation_label``)."""
    return metric.labels(*values)


def observe_request(operation: str, outcome: str, duration_seconds: float, statements: int) -> None:
    labelled(REQUESTS, operation, outcome).inc()
    labelled(REQUEST_DURATION, operation).observe(duration_seconds)
    labelled(REQUEST_STATEMENTS, operation).observe(statements)


def record_rate_limited() -> None:
    RATE_LIMITED.inc()


def record_rate_limit_backend_error() -> None:
    RATE_LIMIT_BACKEND_ERRORS.inc()


def record_billing_run(*, duration_seconds: float, results: Mapping[str, int], lag_seconds: float | None,
                       completed: bool = True, finished_at: float | None = None) -> None:
    """One billing run: its duration, how many subscriptions ended how (``results``, e.g.
    ``{"invoiced": 40, "payment_failed": 2}``), and how overdue the oldest still-due one is (None:
    unknown, a failed run leaves the last value)."""
    BILLING_RUNS.labels("completed" if completed else "failed").inc()
    BILLING_RUN_DURATION.observe(duration_seconds)
    for result, count in results.items():
        if count:
            BILLING_RUN_SUBSCRIPTIONS.labels(result).inc(count)
    if lag_seconds is not None:
        BILLING_RUN_LAG.set(max(lag_seconds, 0.0))
    if completed:
        BILLING_RUN_LAST_SUCCESS.set(time.time() if finished_at is None else finished_at)


def record_webhook_delivery(outcome: str, duration_seconds: float | None = None) -> None:
    """One delivery attempt: ``outcome`` delivered, failed (to be retried), dead or skipped."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if duration_seconds is not None:
        WEBHOOK_DELIVERY_DURATION.observe(duration_seconds)


def set_webhook_backlog(pending: int, oldest_age_seconds: float) -> None:
    """The delivery worker's view of its queue after a pass."""
    WEBHOOK_PENDING.set(pending)
    WEBHOOK_LAG.set(max(oldest_age_seconds, 0.0) if pending else 0.0)


def render() -> tuple[bytes, str]:
    """The exposition (every process's values in multiprocess mode) and its content type."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
