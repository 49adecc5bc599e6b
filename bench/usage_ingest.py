"""recordUsage ingestion throughput, in events per second, batches of 1,000 events, over HTTP against
one serving process (`billing-graphql serve`, uvicorn on uvloop and httptools), on PostgreSQL and SQLite.

    .venv/bin/python bench/usage_ingest.py [--batches 30] [--concurrency 4] [--runs 3] [--service]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--server-cpu 0] [--client-cpu 1]

The events (issue 20): half carry properties (three or four keys), a tenth go to a UNIQUE_COUNT metric
(`active_users`, counting distinct `user` values, about half of them seen before), the rest alternate
between `messages` and `api_calls` (SUM of quantity). Each figure is the median of `--runs`
measurements of `--batches` batches; one client (batches one after another) and `--concurrency`
clients at once (one batch a request each).

The floor: the same rows written by `--concurrency` connections of this process with nothing but
the statement ingestion starts with, `INSERT INTO usage_events ... SELECT FROM unnest(...) ON CONFLICT
DO NOTHING` (PostgreSQL; SQLite's `json_each` form), one transaction a batch: no HTTP, no GraphQL, no
validation, no aggregates. Gateway runs and floor runs are interleaved (gateway 4 clients, floor,
gateway 4 clients with the workload before issue 20 (no properties, no UNIQUE_COUNT), gateway 1
client, ...), so a busy machine slows them alike; the ratios are what to compare. The server's own
CPU time per batch (utime + stime from /proc) is reported too: it holds steadier than events/s when
other work shares the machine.

The server is pinned to `--server-cpu`, this process (clients and floor) to `--client-cpu`
(`taskset`, as bench/README.md does). Reports, never asserts. Each run uses a fresh SQLite file and a
fresh PostgreSQL database.
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
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from billing_graphql.db.engine import Database, make_engine
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Metric
from billing_graphql.domain.aggregation import Aggregation
from billing_graphql.domain.roles import Role
from billing_graphql.domain.usage import EventInput
from billing_graphql.services.catalog.metrics import create_metric
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.usage import ingest
from billing_graphql.services.usage.ingest import record_usage

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000
METRICS = ("messages", "api_calls")
UNIQUE_METRIC = "active_users"
USERS = 2000  # the pool of distinct users a run draws from
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates errors { code } } }"""


def batch_events(run: str, number: int, now: datetime, plain: bool = False) -> list[EventInput]:
    """A batch: every tenth event on the UNIQUE_COUNT metric, every other one with properties
    (``plain``: the workload before issue 20, SUM of quantity on two metrics, no properties)."""
    events = []
    for i in range(BATCH):
        key, at = f"{run}-{number}-{i}", now - timedelta(seconds=i)
        if plain:
            events.append(EventInput(METRICS[i % 2], 1 + i % 5, at, key))
        elif i % 10 == 0:
            user = f"user-{(number * 97 + i * 13) % USERS}"
            events.append(EventInput(UNIQUE_METRIC, 1, at, key, {"user": user, "channel": "whatsapp"}))
        elif i % 2 == 0:
            events.append(EventInput(METRICS[i % 4 // 2], 1 + i % 5, at, key,
                                     {"channel": "whatsapp", "region": "id-jkt", "campaign": f"c{i % 20}"}))
        else:
            events.append(EventInput(METRICS[i % 4 // 2], 1 + i % 5, at, key))
    return events


def wire(events: list[EventInput]) -> bytes:
    items = []
    for event in events:
        item = {"metric": event.metric, "quantity": event.quantity, "timestamp": event.timestamp.isoformat(),
                "idempotencyKey": event.idempotency_key}
        if event.properties is not None:
            item["properties"] = event.properties
        items.append(item)
    return json.dumps({"query": RECORD, "variables": {"input": {"events": items}}}).encode()


async def _gather(jobs: list, concurrency: int, send) -> float:
    """Seconds to run ``send`` over ``jobs`` with ``concurrency`` workers."""
    queue = list(jobs)

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _service(db: Database, organization_id: uuid.UUID, batches: int, concurrency: int) -> tuple[float, float]:
    """Events/s through the service in this process: one batch at a time, ``concurrency`` at once."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]

    async def send(events):
        await record_usage(db, organization_id=organization_id, events=events, now=now)

    await send(batch_events(run + "w", 0, now))
    sequential = await _gather([batch_events(run + "s", n, now) for n in range(batches)], 1, send)
    concurrent = await _gather([batch_events(run + "c", n, now) for n in range(batches)], concurrency, send)
    return batches * BATCH / sequential, batches * BATCH / concurrent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``billing-graphql serve`` (one process, no background workers) pinned to one CPU."""

    def __init__(self, url: str, cpu: int | None) -> None:
        self.port = _free_port()
        env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_RATE_LIMIT": "0",
               "BILLING_JWT_SECRET": "bench-secret-of-enough-length-for-hs256"}
        command = [sys.executable, "-m", "billing_graphql.cli", "serve", "--port", str(self.port), "--no-worker"]
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)

    async def wait(self, client: httpx.AsyncClient) -> None:
        for _ in range(600):
            try:
                await client.post("/graphql", json={"query": "{ clock { now } }"})
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not start")

    def cpu(self) -> float:
        """The server process's CPU seconds so far (utime + stime from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


async def _http(client: httpx.AsyncClient, batches: int, concurrency: int, plain: bool = False) -> float:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]

    async def send(content: bytes) -> None:
        response = await client.post("/graphql", content=content, headers={"content-type": "application/json"})
        answer = response.json()
        assert answer["data"]["recordUsage"]["accepted"] == BATCH, answer

    bodies = [wire(batch_events(run, number, now, plain)) for number in range(batches)]
    return batches * BATCH / await _gather(bodies, concurrency, send)


async def _floor(db: Database, organization_id: uuid.UUID, metric_ids: dict[str, uuid.UUID], batches: int,
                 concurrency: int) -> float:
    """The same rows, inserted by the bare statement, one transaction a batch (see the docstring)."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    sqlite = db.engine.dialect.name == "sqlite"

    def params(events: list[EventInput]) -> dict:
        events = sorted(events, key=lambda event: event.idempotency_key)
        if sqlite:
            rows = json.dumps([[metric_ids[e.metric].hex, e.idempotency_key, e.quantity,
                                e.timestamp.strftime(ingest._SQLITE_TIME), e.properties] for e in events])
            return {"organization_id": organization_id, "now": now, "rows": rows}
        return {"organization_id": organization_id, "now": now,
                "metric_ids": [metric_ids[e.metric] for e in events], "keys": [e.idempotency_key for e in events],
                "quantities": [e.quantity for e in events], "occurred": [e.timestamp for e in events],
                "properties": [None if e.properties is None else json.dumps(e.properties) for e in events]}

    statement = ingest._INSERT_EVENTS_SQLITE if sqlite else ingest._INSERT_EVENTS_POSTGRES

    async def send(batch_params: dict) -> None:
        async with db.engine.begin() as connection:
            result = await connection.execute(statement, batch_params)
            assert len(result.all()) == BATCH

    prepared = [params(batch_events(run, number, now)) for number in range(batches)]
    return batches * BATCH / await _gather(prepared, concurrency, send)


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
        await create_metric(db, None, code=UNIQUE_METRIC, name="Active users", aggregation=Aggregation.UNIQUE_COUNT,
                            property_name="user", now=now)
        organization = await create_organization(db, None, name="Bench", external_id=f"bench-{uuid.uuid4().hex[:6]}",
                                                 now=now)
        floor_organization = await create_organization(db, None, name="Floor",
                                                       external_id=f"floor-{uuid.uuid4().hex[:6]}", now=now)
        _, token = await create_api_key(db, None, role=Role.OWNER, organization_id=organization.id, label="bench",
                                        now=now)
        async with db.read() as session:
            metric_ids = dict((await session.execute(select(Metric.code, Metric.id))).all())
        if args.service:
            runs = [await _service(db, organization.id, args.batches, args.concurrency) for _ in range(args.runs)]
            print(f"{label:10} service (this process)  1 client {statistics.median(r[0] for r in runs):>8,.0f}   "
                  f"{args.concurrency} clients {statistics.median(r[1] for r in runs):>8,.0f} events/s")
        server = Server(url, args.server_cpu)
        figures: dict[str, list[float]] = {"http": [], "http1": [], "floor": [], "cpu": [], "plain": [],
                                           "plain_cpu": []}
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=300,
                                         headers={"authorization": f"Bearer {token}"}) as client:
                await server.wait(client)
                await _http(client, 2, 1)  # warm-up: the first requests compile and fill caches
                await _floor(db, floor_organization.id, metric_ids, 2, 1)
                for _ in range(args.runs):  # interleaved
                    cpu = server.cpu()
                    figures["http"].append(await _http(client, args.batches, args.concurrency))
                    figures["cpu"].append((server.cpu() - cpu) * 1000 / args.batches)
                    figures["floor"].append(await _floor(db, floor_organization.id, metric_ids, args.batches,
                                                         args.concurrency))
                    cpu = server.cpu()
                    figures["plain"].append(await _http(client, args.batches, args.concurrency, plain=True))
                    figures["plain_cpu"].append((server.cpu() - cpu) * 1000 / args.batches)
                    figures["http1"].append(await _http(client, args.batches, 1))
        finally:
            server.stop()
    finally:
        await db.dispose()
    http, floor = statistics.median(figures["http"]), statistics.median(figures["floor"])
    cpu = statistics.median(figures["cpu"])
    print(f"{label:10} HTTP {args.concurrency} clients {http:>8,.0f} events/s   1 client "
          f"{statistics.median(figures['http1']):>8,.0f}   floor ({args.concurrency} connections, bare INSERT ... "
          f"ON CONFLICT DO NOTHING) {floor:>8,.0f}   gateway/floor {http / floor:.2f}\n"
          f"{'':10} server CPU {cpu:.1f} ms a batch of {BATCH:,} = {BATCH * 1000 / cpu:,.0f} events per server "
          f"CPU-second   runs ({args.concurrency} clients): {', '.join(f'{value:,.0f}' for value in figures['http'])}\n"
          f"{'':10} without properties and UNIQUE_COUNT (the workload before issue 20), {args.concurrency} clients: "
          f"{statistics.median(figures['plain']):>8,.0f} events/s, server CPU "
          f"{statistics.median(figures['plain_cpu']):.1f} ms a batch")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30, help="batches of 1,000 events per measurement")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="measurements per figure (the median is shown)")
    parser.add_argument("--service", action="store_true", help="also measure the service in this process")
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_TEST_POSTGRES_URL",
                                                             "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    print(f"recordUsage over HTTP, batches of {BATCH:,} events (half with properties, a tenth UNIQUE_COUNT), "
          f"{args.batches} batches a measurement, median of {args.runs}; server on CPU {args.server_cpu}, "
          f"clients on CPU {args.client_cpu}; load average {os.getloadavg()[0]:.1f}")
    backends = args.backends.split(",")
    if "postgres" in backends:
        name = f"bench_usage_{os.getpid()}"
        url = await _postgres_database(args.postgres, name, create=True)
        try:
            await bench("PostgreSQL", url, args)
        finally:
            await _postgres_database(args.postgres, name, create=False)
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as directory:
            await bench("SQLite", f"sqlite+aiosqlite:///{directory}/bench.db", args)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
