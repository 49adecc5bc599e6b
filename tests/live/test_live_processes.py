"""Across real `billing-graphql serve` processes on PostgreSQL: an event caused through one process (or by
another command) arrives on the sockets of the other, once, through its LISTEN connection; a process that
restarts loses nothing a client asks for again with `after`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.test_scale_out import SERVE, _free_port, _wait_healthy
from tests.helpers import make_keys
from tests.live.conftest import LiveClient

SRC = str(Path(__file__).resolve().parents[2] / "src")
EVENTS = "subscription($after: ID) { billingEvents(after: $after) { id type } }"
USAGE = "subscription { usageUpdated { metric { code } used } }"
ADD_CARD = """mutation { addPaymentMethod(input: {gateway: "sandbox", gatewayPaymentMethodId: "pm_card_visa",
  type: CREDIT_CARD}) { paymentMethod { id } errors { code } } }"""


class ServeProcesses:
    def __init__(self, env: dict, tmp_path: Path) -> None:
        self.env, self.tmp_path = env, tmp_path
        self.processes: dict[int, subprocess.Popen] = {}
        self.ports: dict[int, int] = {}

    async def start(self, index: int) -> str:
        port = self.ports.setdefault(index, _free_port())
        log = self.tmp_path / f"serve-{index}.log"
        with log.open("ab") as out:
            self.processes[index] = subprocess.Popen(
                [str(SERVE), "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT)
        await _wait_healthy(f"http://127.0.0.1:{port}", self.processes[index], log)
        return f"http://127.0.0.1:{port}"

    def ws(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.ports[index]}/graphql"

    def stop(self, index: int) -> None:
        process = self.processes.pop(index)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

    def stop_all(self) -> None:
        for index in list(self.processes):
            self.stop(index)


@pytest.fixture
async def serve(database_url, settings, tmp_path) -> AsyncIterator[ServeProcesses]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several serve processes share PostgreSQL (SQLite's live channel is in-process)")
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_JWT_SECRET": settings.jwt_secret,
           "BILLING_RATE_LIMIT": "0", "PYTHONPATH": SRC, "BILLING_PUBLIC_URL": "http://billing.example.test"}
    processes = ServeProcesses(env, tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


async def _post(base: str, token: str, query: str) -> dict:
    import httpx

    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/graphql", json={"query": query}, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_event_caused_through_one_process_arrives_on_the_other_once(db, serve, live_clients):
    keys = await make_keys(db)
    first, _ = await serve.start(0), await serve.start(1)
    on_first = await (await LiveClient.open(serve.ws(0), keys.owner)).acked()
    on_second = await (await LiveClient.open(serve.ws(1), keys.admin)).acked()
    theirs = await (await LiveClient.open(serve.ws(1), keys.other_owner)).acked()
    live_clients.extend([on_first, on_second, theirs])
    for client in (on_first, on_second, theirs):
        await client.subscribe("e", EVENTS)
    await on_second.subscribe("u", USAGE)
    await asyncio.sleep(0.5)
    added = await _post(first, keys.owner, ADD_CARD)
    assert added["data"]["addPaymentMethod"]["errors"] == []
    for client in (on_first, on_second):
        message = await client.receive()
        assert message["id"] == "e" and message["payload"]["data"]["billingEvents"]["type"] == "payment_method.added"
    # usage recorded by another command (the CLI, a process of its own) reaches the second server's socket
    recorded = subprocess.run([str(SERVE), "record-usage", "--org", "acme", "--metric", "messages", "--quantity", "2"],
                              env=serve.env, capture_output=True, text=True, timeout=60)
    assert recorded.returncode == 0, recorded.stderr
    message = await on_second.receive()
    assert message["id"] == "u" and message["payload"]["data"]["usageUpdated"] == {"metric": {"code": "messages"},
                                                                                  "used": "2"}
    for client in (on_first, on_second):
        await client.quiet(0.8)  # once
    await theirs.quiet(0.1)  # never to another organization


async def test_a_restarted_process_loses_nothing_asked_for_with_after(db, serve, live_clients):
    keys = await make_keys(db)
    first, _ = await serve.start(0), await serve.start(1)
    client = await (await LiveClient.open(serve.ws(1), keys.owner)).acked()
    await client.subscribe("e", EVENTS)
    await asyncio.sleep(0.5)
    await _post(first, keys.owner, ADD_CARD)
    seen = (await client.receive())["payload"]["data"]["billingEvents"]
    serve.stop(1)
    assert await client.closed_with() in (1001, 1006, 1012)
    await _post(first, keys.owner, ADD_CARD.replace("pm_card_visa", "pm_card_mastercard"))
    await serve.start(1)
    again = await (await LiveClient.open(serve.ws(1), keys.owner)).acked()
    live_clients.append(again)
    await again.subscribe("e", EVENTS, {"after": seen["id"]})
    missed = (await again.receive())["payload"]["data"]["billingEvents"]
    assert missed["type"] == "payment_method.added" and missed["id"] != seen["id"]
    await again.quiet(0.8)
