"""`serve` runs the delivery worker in the app's lifespan: an event committed while the app runs
reaches the receiver within about a second (short poll). The CLI knows deliver-webhooks and
serve --no-worker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from litestar.testing import AsyncTestClient

from billing_graphql.app import create_app
from billing_graphql.cli import build_parser
from tests.webhooks.conftest import add_endpoint, emit
from tests.webhooks.receiver import running_receiver


async def test_the_lifespan_delivers_a_committed_event_within_about_a_second(db, settings, organization):
    with running_receiver() as receiver:
        _, secret = await add_endpoint(db, receiver.url)
        receiver.secrets = [secret]
        # The app opens its own database in its lifespan: the test client runs it on another event loop,
        # where the connections of this test's pool cannot be used (asyncpg's are bound to their loop).
        app = create_app(replace(settings, run_workers=True), freeze_gc=False)
        async with AsyncTestClient(app):
            from datetime import UTC, datetime

            await emit(db, organization.id, now=datetime.now(UTC))
            committed = time.monotonic()
            while not receiver.received and time.monotonic() - committed < 5:
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - committed
        assert len(receiver.received) == 1 and receiver.rejected == []
        assert elapsed < 2.5, elapsed  # a 0.5 s poll; generous for a loaded machine


def test_the_cli_has_the_worker_switches():
    parser = build_parser()
    assert parser.parse_args(["deliver-webhooks"]).command == "deliver-webhooks"
    assert parser.parse_args(["serve", "--no-worker"]).no_worker is True
    assert parser.parse_args(["serve"]).no_worker is False
