"""The contract suite's processors: sandbox (in process), Razorpay (its stateful HTTP fake) and
Stripe (localstripe on a free loopback port, started here and stopped after the module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateways.contract.processors import RazorpayProcessor, SandboxProcessor, StripeProcessor
from tests.gateways.contract.servers import ThreadedServer, start_localstripe

PROCESSORS = ["sandbox", "razorpay", "stripe"]


@pytest.fixture(scope="module")
def localstripe() -> Iterator[ThreadedServer]:
    server = start_localstripe()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=PROCESSORS)
def processor(request: pytest.FixtureRequest):
    if request.param == "stripe":
        made = StripeProcessor(request.getfixturevalue("localstripe").url)
    else:
        made = {"sandbox": SandboxProcessor, "razorpay": RazorpayProcessor}[request.param]()
    try:
        yield made
    finally:
        made.close()
