"""Scale-out (issue 13, item 16): two real `billing-graphql serve` processes over one database,
with BILLING_REDIS_URL, share one rate limit and answer every query the same.

Redis comes from BILLING_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); where it is
unreachable this test skips with the reason, except under CI=true, where that is a failure
(.ci/run starts Redis when it is down).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from billing_graphql.demo import seed_demo
from billing_graphql.domain.roles import Role
from tests.api.test_queries_dir import DEFAULT_ROLE, FILES, _substitute, _substitutions, _webhook_substitutions, header
from tests.helpers import T0

REDIS_URL = os.environ.get("BILLING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RATE_LIMIT = 60  # above what the loop over queries/ spends on one key (2 x the spa files)
SERVE = Path(sys.executable).with_name("billing-graphql")
QUERY_FILES = [path for path in FILES if re.search(r"^query\s", path.read_text(), re.MULTILINE)]


async def _redis_or_skip() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no Redis here
        reason = f"Redis at {REDIS_URL} is unreachable: {exc!r}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the scale-out test must run)")
        pytest.skip(reason)
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_healthy(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"serve did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture
async def two_servers(database_url, settings, tmp_path) -> AsyncIterator[list[str]]:
    await _redis_or_skip()
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "BILLING_REDIS_URL": REDIS_URL,
        "BILLING_JWT_SECRET": settings.jwt_secret,
        "BILLING_RATE_LIMIT": str(RATE_LIMIT),
        "BILLING_TRUSTED_PROXIES": "127.0.0.1",
        # Behind one load balancer every process hands out the balancer's address (without it each
        # would use the port it listens on).
        "BILLING_PUBLIC_URL": "https://billing.example.test",
    }
    processes, bases = [], []
    try:
        for index in range(2):
            port = _free_port()
            log = tmp_path / f"serve-{index}.log"
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [str(SERVE), "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=env, stdout=out, stderr=subprocess.STDOUT,
                ))
            bases.append(f"http://127.0.0.1:{port}")
        for index, (base, process) in enumerate(zip(bases, processes, strict=True)):
            await _wait_healthy(base, process, tmp_path / f"serve-{index}.log")
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def _post(client: httpx.AsyncClient, base: str, body: dict, token: str | None, client_ip: str) -> httpx.Response:
    headers = {"x-forwarded-for": client_ip}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post(f"{base}/graphql", json=body, headers=headers)


async def test_two_serve_processes_share_the_rate_limit_and_answer_alike(db, settings, two_servers):
    keys = await seed_demo(db, T0, settings)
    substitutions = await _substitutions(db)
    substitutions.update(await _webhook_substitutions(db))
    first, second = two_servers
    async with httpx.AsyncClient(timeout=30) as client:
        # Every query of queries/ answers the same from either process.
        assert QUERY_FILES
        for path in QUERY_FILES:
            meta = header(path)
            role = Role(meta["role"]) if "role" in meta else DEFAULT_ROLE[path.parent.name]
            body = {"query": path.read_text(),
                    "variables": _substitute(json.loads(meta.get("variables", "{}")), substitutions)}
            answers = [(await _post(client, base, body, keys[role], "192.0.2.20")) for base in (first, second)]
            assert [answer.status_code for answer in answers] == [200, 200], path.name
            assert "errors" not in answers[0].json(), (path.name, answers[0].json())
            assert answers[0].json() == answers[1].json(), path.name

        # A change made through one process is read through the other.
        created = await _post(client, first, {"query": 'mutation { createOrganization(input: {name: "Initech", '
                                              'externalId: "initech"}) { organization { id } errors { code } } }'},
                              keys[Role.SUPER_ADMIN], "192.0.2.20")
        organization_id = created.json()["data"]["createOrganization"]["organization"]["id"]
        read = await _post(client, second, {"query": "query($id: ID!) { organization(id: $id) { name } }",
                                            "variables": {"id": organization_id}},
                           keys[Role.SUPER_ADMIN], "192.0.2.20")
        assert read.json() == {"data": {"organization": {"name": "Initech"}}}

        # One budget for both: RATE_LIMIT requests from one address across the two, then 429 from each.
        if time.time() % 60 > 50:  # too close to the end of the one-minute window: wait for the next
            await asyncio.sleep(61 - time.time() % 60)
        anonymous = {"query": "{ clock { now } }"}
        statuses = [
            (await _post(client, (first, second)[index % 2], anonymous, None, "192.0.2.30")).status_code
            for index in range(RATE_LIMIT)
        ]
        assert statuses == [200] * RATE_LIMIT
        for base in (first, second):
            refused = await _post(client, base, anonymous, None, "192.0.2.30")
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # Another caller (behind the same trusted proxy) is not affected.
        assert (await _post(client, second, anonymous, None, "192.0.2.31")).status_code == 200


async def test_a_key_revoked_through_one_process_is_refused_by_the_other_at_once(db, settings, two_servers):
    """Each process keeps the keys it verified for a moment (issue 24); once `revokeApiKey` has
    answered through one process, the other refuses the key on its very next request."""
    keys = await seed_demo(db, T0, settings)
    first, second = two_servers
    viewer = {"query": "{ viewer { role } }"}
    async with httpx.AsyncClient(timeout=30) as client:
        created = await _post(client, first, {
            "query": "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id } } }",
            "variables": {"i": {"role": "SUPER_ADMIN", "label": "revoked across processes"}},
        }, keys[Role.SUPER_ADMIN], "192.0.2.40")
        new_key = created.json()["data"]["createApiKey"]["key"]
        key_id = created.json()["data"]["createApiKey"]["apiKey"]["id"]
        for base in (first, second):  # verified, and so kept, by both
            answer = await _post(client, base, viewer, new_key, "192.0.2.40")
            assert answer.json() == {"data": {"viewer": {"role": "SUPER_ADMIN"}}}
        revoked = await _post(client, first, {
            "query": "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { errors { code } } }",
            "variables": {"i": {"id": key_id}},
        }, keys[Role.SUPER_ADMIN], "192.0.2.40")
        assert revoked.json() == {"data": {"revokeApiKey": {"errors": []}}}
        for base in (second, first):
            refused = await _post(client, base, viewer, new_key, "192.0.2.40")
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", base
