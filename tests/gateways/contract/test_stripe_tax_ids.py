"""The organization's NPWP kept on its Stripe Customer as a customer tax id of Stripe's type
``id_npwp``. localstripe takes only EU/NZ/AU/ES tax id types, so these calls are answered by a
local HTTP server with Stripe's documented shapes (``GET``/``POST /v1/customers/{id}/tax_ids``,
``DELETE /v1/customers/{id}/tax_ids/{tax_id}``); the library is not patched."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from billing_graphql.gateways.base import GatewayError
from billing_graphql.gateways.stripe import StripeGateway
from tests.gateways.contract.servers import ThreadedServer

CUSTOMER = "cus_RecordedTaxIds1"
NPWP = "01.234.567.8-901.000"


def _tax_id(number: int, kind: str, value: str) -> dict:
    return {"id": f"txi_Recorded{number}", "object": "tax_id", "country": "ID", "customer": CUSTOMER,
            "type": kind, "value": value, "livemode": False, "created": 1700000000,
            "verification": {"status": "unavailable", "verified_address": None, "verified_name": None}}


@pytest.fixture
def stripe_tax_ids() -> Iterator[tuple[ThreadedServer, dict]]:
    state: dict = {"ids": {}, "calls": []}
    numbers = count(1)

    async def listing(request: web.Request) -> web.Response:
        state["calls"].append(("GET", request.path))
        return web.json_response({"object": "list", "url": request.path, "has_more": False,
                                  "data": list(state["ids"].values())})

    async def create(request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        state["calls"].append(("POST", request.path))
        kind, value = form["type"][0], form["value"][0]
        if kind == "id_npwp" and sum(ch.isdigit() for ch in value) not in (15, 16):
            return web.json_response({"error": {"type": "invalid_request_error", "code": "tax_id_invalid",
                                                "message": "Invalid value for id_npwp."}}, status=400)
        made = _tax_id(next(numbers), kind, value)
        state["ids"][made["id"]] = made
        return web.json_response(made)

    async def delete(request: web.Request) -> web.Response:
        state["calls"].append(("DELETE", request.path))
        gone = state["ids"].pop(request.match_info["tax_id"])
        return web.json_response({"id": gone["id"], "object": "tax_id", "deleted": True})

    app = web.Application()
    app.router.add_get("/v1/customers/{customer}/tax_ids", listing)
    app.router.add_post("/v1/customers/{customer}/tax_ids", create)
    app.router.add_delete("/v1/customers/{customer}/tax_ids/{tax_id}", delete)
    server = ThreadedServer(app).start()
    try:
        yield server, state
    finally:
        server.stop()


def gateway(server: ThreadedServer) -> StripeGateway:
    return StripeGateway(secret_key="sk_test_recorded", publishable_key="pk_test_recorded", api_base=server.url)


def values(state: dict) -> list[tuple[str, str]]:
    return [(item["type"], item["value"]) for item in state["ids"].values()]


async def test_the_npwp_becomes_the_customers_id_npwp_tax_id_and_follows_its_changes(stripe_tax_ids):
    server, state = stripe_tax_ids
    await gateway(server).sync_tax_id(CUSTOMER, NPWP)
    assert values(state) == [("id_npwp", NPWP)]

    state["calls"].clear()
    await gateway(server).sync_tax_id(CUSTOMER, NPWP)  # already there: nothing written
    assert [method for method, _ in state["calls"]] == ["GET"]

    await gateway(server).sync_tax_id(CUSTOMER, "09.876.543.2-109.000")  # changed: the old one goes
    assert values(state) == [("id_npwp", "09.876.543.2-109.000")]

    await gateway(server).sync_tax_id(CUSTOMER, None)  # cleared locally: cleared at Stripe
    assert values(state) == []


async def test_tax_ids_of_other_types_are_left_alone(stripe_tax_ids):
    server, state = stripe_tax_ids
    state["ids"]["txi_EuVat"] = _tax_id(99, "eu_vat", "DE123456789")
    await gateway(server).sync_tax_id(CUSTOMER, NPWP)
    await gateway(server).sync_tax_id(CUSTOMER, None)
    assert values(state) == [("eu_vat", "DE123456789")]


async def test_a_value_stripe_refuses_is_a_gateway_error(stripe_tax_ids):
    server, state = stripe_tax_ids
    with pytest.raises(GatewayError, match="id_npwp"):
        await gateway(server).sync_tax_id(CUSTOMER, "12345")
    assert values(state) == []
