"""Live subscriptions: memory per idle socket, and commit-to-client latency of fanned-out events, beside the
HTTP polling that would give the same freshness.

    .venv/bin/python bench/live.py [--postgres URL] [--idle 2000] [--subscribers 500] [--rate 200] [--seconds 4]

One `billing-graphql serve --no-worker` process on a fresh PostgreSQL database (its one LISTEN connection).
1. Idle: ``--idle`` sockets connect, authenticate in connection_init and subscribe to billingEvents; the
   server's resident memory (VmRSS of its process) before and after, per socket.
2. Fan-out: ``--subscribers`` sockets subscribe to billingEvents of one organization (one document: the
   server runs one shared execution per event for all of them); a child process commits ``--rate`` events
   a second for ``--seconds`` s (one transaction each, as services write them), noting each commit's time; every socket's every message is timed on arrival. p50/p99 of arrival - commit, and
   whether every subscriber got every event exactly once.
3. Polling: the same number of clients would poll `{ usage { metrics { used } } }` (what a live usage meter
   polls): its req/s and latency at concurrency 32 over HTTP on the same server, and the request rate that
   ``--subscribers`` clients would need for the freshness measured in 2.
The client runs in this process on the same 2-core machine: it competes with the server for CPU.
Figures go into bench/README.md, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SERVE = Path(sys.executable).with_name("billing-graphql")
EVENTS = "subscription { billingEvents { id data } }"
LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-live-serve.log"  # the server's output, for a failed run
SEQUENCE = re.compile(r'"n":\s*(\d+)')
POLL = "{ usage { metrics { metric { code } used } } }"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def prepare(server_url: str) -> tuple[str, str, uuid.UUID]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from billing_graphql.db.engine import Database, make_engine
    from billing_graphql.db.migrate import migrate
    from billing_graphql.domain.roles import Role
    from billing_graphql.services.platform.api_keys import create_api_key
    from billing_graphql.services.platform.organizations import create_organization

    name = "bench_live"
    admin = make_engine(server_url)
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    db = Database.from_url(url)
    await migrate(db.engine)
    now = datetime.now(UTC)
    organization = await create_organization(db, None, name="Bench", external_id="bench", now=now)
    _, key = await create_api_key(db, None, role=Role.OWNER, organization_id=organization.id, label="bench", now=now)
    await db.dispose()
    return url, key, organization.id


def start_server(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_RATE_LIMIT": "0", "PYTHONPATH": str(ROOT / "src"),
           "BILLING_WS_MAX_PER_CREDENTIAL": "100000", "BILLING_JWT_SECRET": "bench-secret-of-enough-length-0123456"}
    process = subprocess.Popen([str(SERVE), "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=LOG.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("serve did not start")


async def open_subscriber(ws_url: str, key: str):
    connection = await connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=60, max_queue=None,
                               ping_interval=None)
    await connection.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    ack = json.loads(await connection.recv())
    assert ack["type"] == "connection_ack", ack
    await connection.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}))
    return connection


async def open_many(ws_url: str, key: str, count: int) -> list:
    connections = []
    for start in range(0, count, 25):  # in waves: the server's accept queue and its connection_init checks
        connections += await asyncio.gather(*(open_subscriber(ws_url, key) for _ in range(start, min(start + 25,
                                                                                                      count))))
    return connections


async def idle_memory(ws_url: str, key: str, pid: int, count: int) -> None:
    await asyncio.sleep(1)
    before = rss_kib(pid)
    connections = await open_many(ws_url, key, count)
    await asyncio.sleep(3)
    after = rss_kib(pid)
    print(f"idle: {count} sockets (authenticated, one billingEvents subscription each): server RSS "
          f"{before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, {(after - before) / count:.1f} KiB per socket")
    await asyncio.gather(*(connection.close() for connection in connections))
    await asyncio.sleep(2)


async def fan_out(url: str, ws_url: str, key: str, organization_id: uuid.UUID, subscribers: int, rate: int,
                  seconds: float, pid: int) -> float:
    connections = await open_many(ws_url, key, subscribers)
    await asyncio.sleep(2)
    server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    total = int(rate * seconds)
    committed: dict[int, float] = {}
    arrivals: list[float] = []
    counts = [dict() for _ in connections]
    closed: list[int] = []

    async def read(index: int, connection) -> None:
        try:
            while len(counts[index]) < total:
                text = await connection.recv()
                arrived = time.time()
                # the client shares 2 cores with the server: the sequence number is read without parsing
                # the whole message (the test suite checks the messages themselves)
                found = SEQUENCE.search(text) if '"type":"next"' in text else None
                if found is None:
                    continue
                sequence = int(found.group(1))
                counts[index][sequence] = counts[index].get(sequence, 0) + 1
                arrivals.append((sequence, arrived))
        except Exception as exc:  # noqa: BLE001 - a closed socket ends its reader
            closed.append(getattr(getattr(exc, "rcvd", None), "code", -1))

    readers = [asyncio.create_task(read(index, connection)) for index, connection in enumerate(connections)]
    # the commits run in a process of their own: sharing this one's loop with the readers slowed them
    times = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-live-commits.json"
    committer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--commit", url, str(organization_id), str(rate), str(total), str(times),
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    await committer.wait()
    report = json.loads(times.read_text())
    emitted_in = report["elapsed"]
    committed.update({int(sequence): at for sequence, at in report["times"].items()})
    await asyncio.wait(readers, timeout=120)
    server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    latencies = [arrived - committed[sequence] for sequence, arrived in arrivals if sequence in committed]
    delivered = sum(len(count) for count in counts)
    duplicates = sum(n - 1 for count in counts for n in count.values())
    print(f"fan-out: {total} events at {total / emitted_in:.0f}/s committed in {emitted_in:.1f} s to {subscribers} "
          f"subscribers: delivered {delivered}/{total * subscribers}, duplicates {duplicates}, sockets closed "
          f"{len(closed)} {sorted(set(closed))}")
    if latencies:
        print(f"         commit -> client: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
              f"({len(latencies) / max(latencies and [a for _, a in arrivals][-1] - min(committed.values()), 1e-9):.0f} "
              "messages/s through the server)")
        print(f"         CPU: server {server_cpu:.1f} s ({server_cpu / max(delivered, 1) * 1e6:.0f} us per message "
              f"delivered), this client {client_cpu:.1f} s")
    for task in readers:
        task.cancel()
    await asyncio.gather(*(connection.close() for connection in connections), return_exceptions=True)
    return percentile(latencies, 0.5) if latencies else float("nan")


async def commit_events(url: str, organization_id: uuid.UUID, rate: int, total: int, out: Path) -> None:
    """``total`` events at ``rate`` a second, one transaction each, as services write them; each commit's
    time (after COMMIT returned) written to ``out``."""
    from billing_graphql.db.engine import Database
    from billing_graphql.services.platform.audit import emit_event

    db = Database.from_url(url)
    committed: dict[int, float] = {}
    started = time.monotonic()
    for sequence in range(total):
        delay = started + sequence / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        async with db.write() as session:
            emit_event(session, event_type="invoice.paid", organization_id=organization_id,
                       payload={"object": {"id": "bench"}, "n": sequence}, now=datetime.now(UTC))
        committed[sequence] = time.time()
    elapsed = time.monotonic() - started
    await db.dispose()
    out.write_text(json.dumps({"elapsed": elapsed, "times": committed}))


async def polling(base: str, key: str, subscribers: int, freshness: float, seconds: float = 5.0) -> None:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post("/graphql", json={"query": POLL}, headers=headers)
                assert response.status_code == 200 and "errors" not in response.json(), response.text
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(32)))
        elapsed = time.monotonic() - began
    capacity = len(latencies) / elapsed
    # A client polling every T sees a change T/2 late on average, plus the request: for the same mean
    # freshness as the live p50 each of the clients polls every 2 x (p50 - request p50).
    request = percentile(latencies, 0.5)
    print(f"polling: {POLL} at concurrency 32: {capacity:.0f} req/s, p50 {request * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms")
    if freshness <= request:
        print(f"         the live p50 freshness ({freshness * 1000:.0f} ms) by polling: out of reach, one poll alone "
              f"takes {request * 1000:.0f} ms (p50) on this server")
        return
    interval = 2 * (freshness - request)
    needed = subscribers / interval
    print(f"         the live p50 freshness ({freshness * 1000:.0f} ms) by polling: {subscribers} clients each every "
          f"{interval * 1000:.0f} ms = {needed:.0f} req/s, {needed / capacity:.1f} x what this server answers")


async def main_async(args) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    url, key, organization_id = await prepare(args.postgres)
    process = start_server(url, args.port)
    base, ws_url = f"http://127.0.0.1:{args.port}", f"ws://127.0.0.1:{args.port}/graphql"
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores)")
        if args.idle:  # --idle 0: the fan-out alone
            await idle_memory(ws_url, key, process.pid, args.idle)
        freshness = await fan_out(url, ws_url, key, organization_id, args.subscribers, args.rate, args.seconds,
                                  process.pid)
        await polling(base, key, args.subscribers, freshness)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    if sys.argv[1:2] == ["--commit"]:
        url, organization, rate, total, out = sys.argv[2:7]
        asyncio.run(commit_events(url, uuid.UUID(organization), int(rate), int(total), Path(out)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("BILLING_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--port", type=int, default=8795)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
