"""GET /metrics: names and labels move after a few requests; token; rate-limit refusals; the JSON
request log line. The registry is the process's, so counters are compared before and after."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing_graphql import metrics
from billing_graphql.app import create_app
from tests.helpers import count_statements, test_settings

PROBE = "query MetricsProbe { viewer { role } }"


@asynccontextmanager
async def client(db, database_url, **overrides):
    app = create_app(test_settings(database_url, **overrides), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


async def graphql(http, query, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query}, headers=headers)


async def scrape(http, token=None) -> dict[tuple[str, tuple], float]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-type"].count("charset") == 1, response.headers["content-type"]
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_request_counters_latency_and_statements_move(db, database_url, keys):
    async with client(db, database_url) as http:
        await graphql(http, PROBE, keys.owner)  # the key's first use records last_used_at
        before = await scrape(http)
        with count_statements(db) as cold:  # the key read again
            assert (await graphql(http, PROBE, keys.owner)).json()["data"] == {"viewer": {"role": "OWNER"}}
        with count_statements(db, cold_credentials=False) as warm:  # the key kept by this process
            await graphql(http, PROBE, keys.owner)
        await graphql(http, "query MetricsProbe { viewer { role } }")  # anonymous: UNAUTHENTICATED
        await graphql(http, "query Broken { viewer { ")  # does not parse
        after = await scrape(http)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("billing_graphql_requests_total", operation="MetricsProbe", outcome="ok") == 2
    assert moved("billing_graphql_requests_total", operation="MetricsProbe", outcome="client_error") == 1
    assert moved("billing_graphql_requests_total", operation="invalid", outcome="client_error") == 1
    assert moved("billing_graphql_request_duration_seconds_count", operation="MetricsProbe") == 3
    assert moved("billing_graphql_request_duration_seconds_bucket", operation="MetricsProbe", le="+Inf") == 3
    assert moved("billing_graphql_request_duration_seconds_sum", operation="MetricsProbe") > 0
    # Two keyed requests and one anonymous one; each keyed one sends what count_statements saw.
    assert cold.count >= 1
    assert moved("billing_graphql_request_sql_statements_sum", operation="MetricsProbe") == cold.count + warm.count
    names = {name for name, _ in after}
    assert {"billing_graphql_rate_limited_total", "billing_graphql_billing_runs_total",
            "billing_graphql_webhook_delivery_lag_seconds", "billing_graphql_billing_run_lag_seconds",
            "billing_graphql_webhook_pending_deliveries"} <= names


async def test_metrics_ask_for_the_token_when_one_is_set(db, database_url):
    async with client(db, database_url, metrics_token="scrape-secret") as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"authorization": "Bearer wrong"})).status_code == 401
        assert await scrape(http, token="scrape-secret")


async def test_rate_limit_refusals_are_counted(db, database_url, keys):
    async with client(db, database_url, rate_limit=2) as http:
        before = await scrape(http)
        # A key that works has its own budget of 2 from its first request (issue 19, item 8).
        statuses = [(await graphql(http, PROBE, keys.owner)).status_code for _ in range(3)]
        after = await scrape(http)
    assert statuses == [200, 200, 429]
    assert value(after, "billing_graphql_rate_limited_total") - value(before, "billing_graphql_rate_limited_total") == 1
    assert (value(after, "billing_graphql_requests_total", operation="none", outcome="rate_limited")
            - value(before, "billing_graphql_requests_total", operation="none", outcome="rate_limited")) == 1


async def test_a_json_line_per_request_when_asked(db, database_url, keys):
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    logging.getLogger("billing_graphql.requests").addHandler(handler)
    try:
        async with client(db, database_url, log_format="json") as http:
            await graphql(http, PROBE, keys.owner)
            await graphql(http, PROBE, keys.owner)
    finally:
        logging.getLogger("billing_graphql.requests").removeHandler(handler)
    first, last = (json.loads(line) for line in (lines[-2], lines[-1]))
    for line in (first, last):
        assert line["event"] == "graphql_request" and line["operation"] == "MetricsProbe"
        assert (line["outcome"], line["status"], line["role"]) == ("ok", 200, "OWNER")
        assert line["organization"] == str(keys.organization_id)
        assert line["duration_ms"] > 0 and line["ts"].endswith("Z")
    assert first["statements"] >= 1  # the key's first use: read and its last use recorded


def test_billing_run_and_webhook_helpers_move_their_metrics():
    def sample(name, **labels):
        from prometheus_client import REGISTRY

        return REGISTRY.get_sample_value(name, labels) or 0.0

    runs = sample("billing_graphql_billing_runs_total", outcome="completed")
    renewed = sample("billing_graphql_billing_run_subscriptions_total", result="renewed")
    metrics.record_billing_run(duration_seconds=1.5, results={"renewed": 3, "payment_failed": 0}, lag_seconds=42)
    assert sample("billing_graphql_billing_runs_total", outcome="completed") == runs + 1
    assert sample("billing_graphql_billing_run_subscriptions_total", result="renewed") == renewed + 3
    assert sample("billing_graphql_billing_run_lag_seconds") == 42
    assert sample("billing_graphql_billing_run_last_success_timestamp_seconds") > 0
    delivered = sample("billing_graphql_webhook_deliveries_total", outcome="delivered")
    metrics.record_webhook_delivery("delivered", 0.2)
    metrics.set_webhook_backlog(5, 30.0)
    assert sample("billing_graphql_webhook_deliveries_total", outcome="delivered") == delivered + 1
    assert (sample("billing_graphql_webhook_pending_deliveries"), sample("billing_graphql_webhook_delivery_lag_seconds")) == (5, 30)
    metrics.set_webhook_backlog(0, 99.0)
    assert sample("billing_graphql_webhook_delivery_lag_seconds") == 0


@pytest.mark.parametrize("name,label", [("MetricsProbe", "MetricsProbe"), (None, "anonymous"), ("x" * 65, "other"),
                                        ("has space", "other")])
def test_operation_labels_are_bounded(name, label):
    assert metrics.operation_label(name) == label
