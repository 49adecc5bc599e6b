"""The billing run's operator metrics move after a real run (issue 18, item 14): advanceClock
runs the billing run, and /metrics, scraped over HTTP, shows the run, its subscriptions by
result and the last success's time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from billing_graphql.app import create_app
from billing_graphql.db.engine import Database
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_billing, run_config
from tests.api.test_metrics import scrape, value
from tests.helpers import test_settings
from tests.services.billing_run_helpers import subscribed_on_test_clock

T0 = datetime(2026, 1, 31, 10, tzinfo=UTC)
ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { errors { code } } }'


async def test_advance_clock_records_the_billing_run_in_metrics(db, database_url, keys):
    settings = test_settings(database_url, test_clock=True)
    await subscribed_on_test_clock(db, keys.organization_id, settings, T0)
    app = create_app(settings, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        before = await scrape(http)
        started = time.time()
        response = await http.post("/graphql", json={"query": ADVANCE, "variables": {"to": "2026-03-01T00:00:00Z"}},
                                   headers={"authorization": f"Bearer {keys.super_admin}"})
        assert response.json()["data"]["advanceClock"]["errors"] == []
        after = await scrape(http)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("billing_graphql_billing_runs_total", outcome="completed") == 1
    assert moved("billing_graphql_billing_runs_total", outcome="failed") == 0
    assert moved("billing_graphql_billing_run_subscriptions_total", result="invoiced") == 1  # the Feb 28 renewal
    assert moved("billing_graphql_billing_run_subscriptions_total", result="paid") == 1
    assert moved("billing_graphql_billing_run_duration_seconds_count") == 1
    assert value(after, "billing_graphql_billing_run_last_success_timestamp_seconds") >= int(started)
    assert value(after, "billing_graphql_billing_run_lag_seconds") == 0  # nothing left due


async def test_a_run_that_fails_is_counted_as_failed(db, database_url, keys, tmp_path):
    """``run_billing`` (what ``run-billing``, the worker and advanceClock call) counts a run that
    could not read the database as failed, and keeps the last success's time."""
    settings = test_settings(database_url)
    broken = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db.sqlite")
    app = create_app(settings, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        before = await scrape(http)
        with pytest.raises(Exception):
            await run_billing(broken, run_config(settings, GatewayRegistry(settings)), now=T0)
        after = await scrape(http)
    await broken.engine.dispose()
    assert value(after, "billing_graphql_billing_runs_total", outcome="failed") == \
        value(before, "billing_graphql_billing_runs_total", outcome="failed") + 1
    assert value(after, "billing_graphql_billing_runs_total", outcome="completed") == \
        value(before, "billing_graphql_billing_runs_total", outcome="completed")
    assert value(after, "billing_graphql_billing_run_last_success_timestamp_seconds") == \
        value(before, "billing_graphql_billing_run_last_success_timestamp_seconds")
