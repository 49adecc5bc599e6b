"""The delivery worker's metrics move with real deliveries (issue 18, item 14, webhook half):
events delivered to a real receiver on 127.0.0.1, then ``GET /metrics`` scraped over HTTP."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from billing_graphql.jobs.webhook_delivery import WebhookWorker
from tests.webhooks.conftest import add_endpoint, emit


async def scrape(api) -> dict[tuple[str, tuple], float]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_deliveries_and_backlog_are_scraped_after_real_deliveries(api, db, organization, receiver, clock):
    endpoint, secret = await add_endpoint(db, receiver.url, organization_id=organization.id)
    receiver.secrets.append(secret)
    receiver.statuses.extend([500])  # the first attempt fails, the others are answered 200
    await emit(db, organization.id, "invoice.paid", count=3, now=clock())
    before = await scrape(api)

    worker = WebhookWorker(db, production=False, now=clock, rand=lambda: 0.5)
    try:
        clock.advance(seconds=2)
        assert await worker.run_once() == 3
        after_first = await scrape(api)
        assert len(receiver.received) == 2
        delivered = "billing_graphql_webhook_deliveries_total"
        assert value(after_first, delivered, outcome="delivered") - value(before, delivered, outcome="delivered") == 2
        assert value(after_first, delivered, outcome="failed") - value(before, delivered, outcome="failed") == 1
        duration = "billing_graphql_webhook_delivery_duration_seconds_count"
        assert value(after_first, duration) - value(before, duration) == 3
        # One delivery waits for its retry (after 5 s); its event happened 2 s ago.
        assert value(after_first, "billing_graphql_webhook_pending_deliveries") == 1
        assert value(after_first, "billing_graphql_webhook_delivery_lag_seconds") == 2

        clock.advance(seconds=10)
        assert await worker.run_until_idle() == 1
        after_retry = await scrape(api)
    finally:
        await worker.close()
    assert len(receiver.received) == 3
    assert value(after_retry, delivered, outcome="delivered") - value(before, delivered, outcome="delivered") == 3
    assert value(after_retry, "billing_graphql_webhook_pending_deliveries") == 0
    assert value(after_retry, "billing_graphql_webhook_delivery_lag_seconds") == 0
