"""recordUsage ingestion throughput, in events per second, with batches of 1,000 events, on SQLite
and on PostgreSQL: through the service (one batch at a time, then several at once), and over
HTTP against a uvicorn server (one batch a request).

    .venv/bin/python bench/usage_ingest.py [--batches 30] [--concurrency 4] [--no-http]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Reports, never asserts. Each run uses a fresh SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from billing_graphql.db.engine import Database, make_engine
from billing_graphql.db.migrate import migrate
from billing_graphql.domain.roles import Role
from billing_graphql.domain.usage import EventInput
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.usage.ingest import record_usage

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000
METRICS = ("messages", "api_calls")
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates errors { code } } }"""


def batch_events(run: str, number: int, now: datetime) -> list[EventInput]:
    return [EventInput(METRICS[i % 2], 1 + i % 5, now - timedelta(seconds=i), f"{run}-{number}-{i}")
            for i in range(BATCH)]


async def _service(
    db: Database, organization_id: uuid.UUID, batches: int, concurrency: int
) -> tuple[float, float, float]:
    """Events/s one batch at a time, ``concurrency`` batches at once, and one at a time per CPU
    second of this process (SQLite's work included, PostgreSQL's server not)."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    await record_usage(db, organization_id=organization_id, events=batch_events(run + "w", 0, now), now=now)
    prepared = [batch_events(run, number, now) for number in range(batches)]
    started, cpu = time.perf_counter(), time.process_time()
    for events in prepared:
        await record_usage(db, organization_id=organization_id, events=events, now=now)
    sequential = batches * BATCH / (time.perf_counter() - started)
    per_cpu = batches * BATCH / (time.process_time() - cpu)

    queue = [batch_events(run + "c", number, now) for number in range(batches)]

    async def worker() -> None:
        while queue:
            await record_usage(db, organization_id=organization_id, events=queue.pop(), now=now)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    concurrent = batches * BATCH / (time.perf_counter() - started)
    return sequential, concurrent, per_cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _http(url: str, token: str, batches: int, concurrency: int) -> tuple[float, float]:
    port = _free_port()
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_RATE_LIMIT": "0",
           "BILLING_JWT_SECRET": "bench-secret-of-enough-length-for-hs256"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "billing_graphql.app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     headers={"authorization": f"Bearer {token}"}) as client:
            for _ in range(600):
                try:
                    await client.post("/graphql", json={"query": "{ clock { now } }"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            run = uuid.uuid4().hex[:6]

            def body(tag: str, number: int) -> bytes:
                now = datetime.now(UTC)
                events = [{"metric": e.metric, "quantity": e.quantity, "timestamp": e.timestamp.isoformat(),
                           "idempotencyKey": e.idempotency_key} for e in batch_events(run + tag, number, now)]
                return json.dumps({"query": RECORD, "variables": {"input": {"events": events}}}).encode()

            async def send(content: bytes) -> None:
                response = await client.post("/graphql", content=content,
                                             headers={"content-type": "application/json"})
                answer = response.json()
                assert answer["data"]["recordUsage"]["accepted"] == BATCH, answer

            await send(body("w", 0))
            prepared = [body("s", number) for number in range(batches)]
            started = time.perf_counter()
            for content in prepared:
                await send(content)
            sequential = batches * BATCH / (time.perf_counter() - started)
            queue = [body("c", number) for number in range(batches)]

            async def worker() -> None:
                while queue:
                    await send(queue.pop())

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            concurrent = batches * BATCH / (time.perf_counter() - started)
            return sequential, concurrent
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _postgres_database(server_url: str, name: str, create: bool) -> str:
    admin = make_engine(server_url)
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if create:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def bench(label: str, url: str, args: argparse.Namespace) -> None:
    db = Database.from_url(url)
    try:
        await migrate(db.engine)
        now = datetime.now(UTC)
        organization = await create_organization(db, None, name="Bench", external_id=f"bench-{uuid.uuid4().hex[:6]}",
                                                 now=now)
        _, token = await create_api_key(db, None, role=Role.OWNER, organization_id=organization.id, label="bench",
                                        now=now)
        runs = [await _service(db, organization.id, args.batches, args.concurrency) for _ in range(args.runs)]
    finally:
        await db.dispose()
    print(f"{label:10} service  sequential {statistics.median(r[0] for r in runs):>8,.0f} events/s   "
          f"{args.concurrency} at once {statistics.median(r[1] for r in runs):>8,.0f} events/s   "
          f"per CPU-second of this process {statistics.median(r[2] for r in runs):>8,.0f}")
    if args.http:
        runs = [await _http(url, token, args.batches, args.concurrency) for _ in range(args.runs)]
        print(f"{label:10} HTTP     sequential {statistics.median(r[0] for r in runs):>8,.0f} events/s   "
              f"{args.concurrency} at once {statistics.median(r[1] for r in runs):>8,.0f} events/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30, help="batches of 1,000 events per measurement")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="measurements per figure (the median is shown)")
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--postgres", default=os.environ.get("BILLING_TEST_POSTGRES_URL",
                                                             "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print(f"recordUsage, batches of {BATCH:,} COUNTER events, {args.batches} batches a measurement, "
          f"median of {args.runs}")
    with tempfile.TemporaryDirectory() as directory:
        await bench("SQLite", f"sqlite+aiosqlite:///{directory}/bench.db", args)
    name = f"bench_usage_{os.getpid()}"
    url = await _postgres_database(args.postgres, name, create=True)
    try:
        await bench("PostgreSQL", url, args)
    finally:
        await _postgres_database(args.postgres, name, create=False)


if __name__ == "__main__":
    asyncio.run(main())
