"""The contract suite's processors: sandbox (in process), Razorpay (its stateful HTTP fake) and
Stripe (localstripe on a free loopback port, started here and stopped after the module)."""

from __future__ import annotations


import pytest

from tests.gateways.contract.processors import RazorpayProcessor, SandboxProcessor, StripeProcessor
from tests.gateways.contract.servers import running_localstripe

PROCESSORS = ["sandbox", "razorpay", "stripe"]


localstripe = pytest.fixture(scope="module", name="localstripe")(running_localstripe)


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
