"""Two workers (two processes' worth: separate engines and pools) over one PostgreSQL database
deliver each of 1,000 events exactly once, counted at the receiver."""

from __future__ import annotations

import asyncio

import pytest

from billing_graphql.db.engine import Database
from billing_graphql.jobs.webhook_delivery import WebhookWorker
from tests.webhooks.conftest import add_endpoint, emit
from tests.webhooks.receiver import running_receiver


async def test_two_workers_deliver_1000_events_exactly_once(backend, database_url, db, organization, clock):
    if backend != "postgres":
        pytest.skip("several delivering processes need PostgreSQL (SQLite runs one)")
    with running_receiver() as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        await emit(db, organization.id, count=1000)
        first, second = Database.from_url(database_url), Database.from_url(database_url)
        workers = [WebhookWorker(one, production=False, now=clock, rand=lambda: 0.5, batch_size=50)
                   for one in (first, second)]
        try:
            done = await asyncio.gather(*(work.run_until_idle() for work in workers))
            done.append(await workers[0].run_until_idle())  # whatever the other still held
        finally:
            for work, one in zip(workers, (first, second), strict=True):
                await work.close()
                await one.dispose()
        counts = receiver.counts()
        assert len(counts) == 1000 and set(counts.values()) == {1}
        assert sum(done) == 1000 and min(done[:2]) > 0  # both took part, nothing sent twice
        assert receiver.rejected == []
