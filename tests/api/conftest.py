"""Fixtures of the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from billing_graphql.db.models import TestClock
from tests.helpers import GraphQLClient, test_settings

APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def clock_api(db, database_url) -> AsyncIterator[GraphQLClient]:
    """The API with the test clock on, frozen at 2026-04-01 00:00 UTC."""
    import httpx

    from billing_graphql.app import create_app

    async with db.write() as session:
        session.add(TestClock(id=1, now=APRIL_1))
    app = create_app(test_settings(database_url, test_clock=True), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield GraphQLClient(client, db)
