"""Rate limits when Redis is misconfigured or goes away (issue 19, item 7), and a working credential's
own budget from its first request (issue 19, item 8).

The Redis here is our own ``redis-server`` on a free loopback port, started and shut down by the
test; the machine's Redis is left alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from billing_graphql.app import create_app
from billing_graphql.settings import Settings, SettingsError
from tests.helpers import test_settings

QUERY = {"query": "{ viewer { role } }"}
NOW = 1_800_000_030.0  # mid-window: every request of a test falls in one window


def _client(app, client_address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _app(db, database_url, **overrides):
    app = create_app(test_settings(database_url, **overrides), db=db, freeze_gc=False)
    app.state.rate_limiter.clock = lambda: NOW
    return app


async def _post(client: httpx.AsyncClient, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json=QUERY, headers=headers)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path: Path):
    """A throw-away redis-server on a free loopback port (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


def _backend_errors(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("billing_graphql_rate_limit_backend_errors_total "):
            return float(line.split()[1])
    raise AssertionError("billing_graphql_rate_limit_backend_errors_total is not exposed")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_redis_stopped_mid_run_falls_back_to_the_process_limit(db, database_url, keys, own_redis):
    process, url = own_redis
    app = _app(db, database_url, rate_limit=30, redis_url=url)
    logger = logging.getLogger("billing_graphql.rate_limit")
    handler = _Records()
    logger.addHandler(handler)
    try:
        await _run_until_redis_stops(app, keys, process, handler)
    finally:
        logger.removeHandler(handler)


async def _run_until_redis_stops(app, keys, process, handler) -> None:
    async with _client(app) as client:
        errors_before = _backend_errors((await client.get("/metrics")).text)
        for _ in range(5):
            assert (await _post(client, keys.owner)).status_code == 200
        # Redis goes away mid-run.
        process.terminate()
        process.wait(timeout=10)
        statuses = [(await _post(client, keys.owner)).status_code for _ in range(35)]
        # Still limited (per process, counted from the failure), never refused wholesale.
        assert statuses == [200] * 30 + [429] * 5
        errors_after = _backend_errors((await client.get("/metrics")).text)
    assert errors_after - errors_before >= 1
    warnings = [record for record in handler.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]  # one a minute, not one a request
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert "BILLING_REDIS_URL" in warnings[0].getMessage()


def test_a_redis_url_that_is_not_one_is_a_setting_error():
    for value in ("notaurl", "http://127.0.0.1:6379", "redis://127.0.0.1:notaport", "redis://"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"BILLING_REDIS_URL": value})
        assert "BILLING_REDIS_URL" in str(caught.value)
    for value in ("redis://127.0.0.1:6379/0", "rediss://:secret@cache.example:6380", "unix:///run/redis.sock"):
        assert Settings.from_env({"BILLING_REDIS_URL": value}).redis_url == value


def test_serve_with_a_bad_redis_url_exits_with_one_line(tmp_path):
    env = {**os.environ, "BILLING_REDIS_URL": "notaurl",
           "BILLING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-m", "billing_graphql.cli", "serve", "--port", str(_free_port())],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "BILLING_REDIS_URL" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


async def test_a_working_credential_counts_on_its_own_budget_from_its_first_request(db, database_url, keys):
    async with _client(_app(db, database_url, rate_limit=30)) as client:
        statuses = [(await _post(client, keys.owner)).status_code for _ in range(40)]
        assert statuses.count(200) == 30 and statuses[30:] == [429] * 10
        # The address's own budget was not touched by the key.
        assert (await _post(client)).status_code == 200


async def test_a_working_credential_is_served_after_junk_spent_the_address(db, database_url, keys):
    async with _client(_app(db, database_url, rate_limit=5)) as client:
        for _ in range(5):
            assert (await _post(client, "bgk_" + secrets.token_urlsafe(32))).status_code == 200
        assert (await _post(client, "bgk_" + secrets.token_urlsafe(32))).status_code == 429
        assert (await _post(client)).status_code == 429
        answer = await _post(client, keys.owner)
        assert answer.status_code == 200 and answer.json()["data"]["viewer"]["role"] == "OWNER"
