"""Journeys run the whole app over HTTP with the test clock on, a portal secret, and a real webhook
receiver on loopback. Only the first super-admin key is made outside GraphQL (as the CLI's
`create-api-key` does): everything after it goes through `/graphql` and the portal's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.api_keys import create_api_key
from tests.helpers import test_settings
from tests.journeys.laws import Ledger
from tests.webhooks.receiver import running_receiver

PORTAL_SECRET = "journeys-portal-secret-0123456789abcdef"


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True, portal_secret=PORTAL_SECRET,
                         public_url="https://billing.example")


@pytest.fixture
def receiver():
    with running_receiver() as server:
        yield server


@pytest.fixture
async def ledger(db, api, receiver) -> AsyncIterator[Ledger]:
    _, staff = await create_api_key(db, None, role=Role.SUPER_ADMIN, organization_id=None, label="staff",
                                 now=datetime.now(UTC))
    ledger = Ledger(api, db, staff, receiver)
    try:
        yield ledger
    finally:
        await ledger.close()
