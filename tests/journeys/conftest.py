"""Journeys run the whole app over HTTP with the test clock on, a portal secret, and a real webhook
receiver on loopback. Only the first super-admin key is made outside GraphQL (as the CLI's
`create-api-key` does): everything after it goes through `/graphql` and the portal's routes.

The processor: the sandbox unless a journey is parametrized with ``processor`` (indirect):
``PROCESSORS`` runs it once with the sandbox and once with Stripe, against localstripe (the
contract suite's fake Stripe, one for the whole directory, behind the contract suite's proxy that
replays Stripe's ``Idempotency-Key`` and drops ``setup_future_usage``, the one parameter the
journeys send that localstripe refuses and real Stripe accepts). The journeys' card step
(``steps.card``) adds the card with the ledger's processor, so the journey and its hand-worked
figures are the same for both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.api_keys import create_api_key
from tests.gateways.contract.servers import IdempotentProxy, running_localstripe
from tests.helpers import test_settings
from tests.journeys.laws import Ledger
from tests.webhooks.receiver import running_receiver

PORTAL_SECRET = "journeys-portal-secret-0123456789abcdef"
PROCESSORS = pytest.mark.parametrize("processor", ["sandbox", "stripe"], indirect=True)

localstripe = pytest.fixture(scope="package", name="localstripe")(running_localstripe)


@pytest.fixture
def processor(request: pytest.FixtureRequest) -> str:
    """The processor the journey's cards belong to: ``sandbox`` unless parametrized."""
    return getattr(request, "param", "sandbox")


STRIPE_WEBHOOK_SECRET = "whsec_journeys"


@pytest.fixture
def stripe_proxy(localstripe):
    """Stripe for one journey: localstripe behind Idempotency-Key replay (keys are per test, as
    they are per account at Stripe), without ``setup_future_usage``."""
    proxy = IdempotentProxy(localstripe.url, drop_params=("setup_future_usage",)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def settings(database_url: str, processor: str, request: pytest.FixtureRequest):
    stripe = {}
    if processor == "stripe":
        stripe = dict(stripe_secret_key="sk_test_journeys", stripe_publishable_key="pk_test_journeys",
                      stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                      stripe_api_base=request.getfixturevalue("stripe_proxy").url)
    return test_settings(database_url, test_clock=True, portal_secret=PORTAL_SECRET,
                         public_url="https://billing.example", **stripe)


@pytest.fixture
def receiver():
    with running_receiver() as server:
        yield server


@pytest.fixture
async def ledger(db, api, receiver, processor: str, request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    _, staff = await create_api_key(db, None, role=Role.SUPER_ADMIN, organization_id=None, label="staff",
                                 now=datetime.now(UTC))
    ledger = Ledger(api, db, staff, receiver, processor=processor,
                    stripe=request.getfixturevalue("localstripe") if processor == "stripe" else None)
    try:
        yield ledger
    finally:
        await ledger.close()
