"""BILLING_WS_MAX_PER_CREDENTIAL across two real `serve` processes sharing the Redis at 127.0.0.1:6379: the
count is the credential's, whichever process holds its sockets; a closed socket gives its slot back; the
slots of a process that died lapse (they carry Redis's expiry, renewed only while the process lives)."""

from __future__ import annotations

import hashlib
import os
import signal

import pytest

from billing_graphql.http.rate_limit import credential_digest
from billing_graphql.services.live.slots import TTL_SECONDS
from tests.helpers import make_keys
from tests.live.conftest import LiveClient
from tests.live.test_live_processes import serve  # noqa: F401 - the fixture

REDIS_URL = os.environ.get("BILLING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis():
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:  # noqa: BLE001
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield client
    await client.aclose()


async def test_the_socket_limit_counts_across_processes_and_lapses_with_a_dead_one(db, serve, redis,  # noqa: F811
                                                                                   database_url, live_clients):
    keys = await make_keys(db)
    serve.env.update({"BILLING_REDIS_URL": REDIS_URL, "BILLING_WS_MAX_PER_CREDENTIAL": "2"})
    await serve.start(1)
    await serve.start(2)

    async def opened(index: int) -> LiveClient:
        client = await LiveClient.open(serve.ws(index), keys.owner)
        live_clients.append(client)
        return client

    first = await (await opened(1)).acked()
    await (await opened(2)).acked()
    for index in (1, 2):  # the credential's two slots are taken, one in each process
        assert await (await opened(index)).closed_with() == 4429
    await first.close()
    await (await opened(2)).acked()  # the closed socket gave its slot back

    deployment = hashlib.sha256(database_url.encode()).hexdigest()[:12]
    key = f"billing-graphql:ws:{deployment}:{credential_digest('Bearer ' + keys.owner)}"
    assert await redis.zcard(key) == 2
    # process 2 dies without closing anything: its slots stay until they lapse, never longer than the TTL
    serve.processes[2].send_signal(signal.SIGKILL)
    serve.processes[2].wait(timeout=20)
    serve.processes.pop(2)
    seconds, micros = await redis.time()
    scores = [score for _, score in await redis.zrange(key, 0, -1, withscores=True)]
    assert len(scores) == 2 and all(0 < score - (seconds + micros / 1e6) <= TTL_SECONDS for score in scores)
    assert await (await opened(1)).closed_with() == 4429
    # as if TTL_SECONDS had passed: the dead process's slots lapse and another process takes them
    await redis.zadd(key, {member: 0 for member in await redis.zrange(key, 0, -1)})
    await (await opened(1)).acked()
    await (await opened(1)).acked()
    assert await (await opened(1)).closed_with() == 4429
