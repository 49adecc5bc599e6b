"""Webhook deliveries per second to a local receiver, on SQLite and on PostgreSQL.

    .venv/bin/python bench/webhook_delivery.py [--events 2000] [--batch 50] [--postgres URL]

The receiver is a raw ASGI app under uvicorn in its own process on 127.0.0.1 (it answers 200
and counts webhook-ids; it checks the signature of every 100th request with the
``standardwebhooks`` library). For each database: a fresh database is migrated, one endpoint
and N outbox events are written, then the delivery worker runs until nothing is due: fan-out,
claim, sign, POST and record, all timed. On PostgreSQL it runs again with two workers (two
engines, as two processes would have) over another N events. Every event must arrive exactly
once. A bare httpx client posting the same number of requests in the same batches runs first,
as the ceiling of this machine at the time. Figures go into notes, never into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"

# ---- the receiver (run by uvicorn in a subprocess) ------------------------------------------

_seen: dict[str, int] = {}
_bad = 0


async def receiver_app(scope, receive, send) -> None:  # pragma: no cover - runs in the subprocess
    global _bad
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/raw":
        answer = b"ok"  # the baseline's requests: neither counted nor verified
    elif scope["method"] == "GET":
        answer = json.dumps({"received": sum(_seen.values()), "unique": len(_seen),
                             "duplicates": sum(n - 1 for n in _seen.values()), "bad": _bad}).encode()
    else:
        headers = {key.decode(): value.decode() for key, value in scope["headers"]}
        webhook_id = headers.get("webhook-id", "")
        _seen[webhook_id] = _seen.get(webhook_id, 0) + 1
        if len(_seen) % 100 == 0:
            from standardwebhooks import Webhook

            try:
                Webhook(os.environ[SECRET_ENV]).verify(body, headers)
            except Exception:
                _bad += 1
        answer = b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


# ---- the benchmark ------------------------------------------------------------------------

def _start_receiver(port: int, secret: str) -> subprocess.Popen:
    env = {**os.environ, SECRET_ENV: secret, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.webhook_delivery:receiver_app", "--port", str(port),
         "--log-level", "warning", "--no-access-log", "--backlog", "1024"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the receiver did not start")


async def _postgres_database(server_url: str, name: str, drop: bool = False) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from billing_graphql.db.engine import make_engine

    admin = make_engine(server_url)
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _prepare(url: str, receiver_url: str, secret: str):
    from billing_graphql.db.engine import Database
    from billing_graphql.db.migrate import migrate
    from billing_graphql.db.models import Organization, WebhookEndpoint

    db = Database.from_url(url)
    await migrate(db.engine)
    now = datetime.now(UTC)
    organization = Organization(id=uuid.uuid4(), name="Bench", external_id=f"bench-{uuid.uuid4().hex[:6]}",
                                created_at=now, updated_at=now)
    async with db.write() as session:
        session.add(organization)
        await session.flush()
        session.add(WebhookEndpoint(organization_id=organization.id, url=receiver_url, description="bench",
                                    secret=secret, event_types=["*"], enabled=True, created_at=now, updated_at=now))
    return db, organization.id


async def _emit(db, organization_id, count: int) -> None:
    from billing_graphql.services.platform.audit import emit_event

    for start in range(0, count, 500):
        async with db.write() as session:
            for index in range(start, min(start + 500, count)):
                emit_event(session, event_type="invoice.paid", organization_id=organization_id,
                           payload={"invoice_id": uuid.uuid4(), "number": f"INV-{index:06d}", "total": 299000,
                                    "currency": "IDR", "status": "PAID"}, now=datetime.now(UTC))


async def _deliver(urls: list[str], batch: int) -> tuple[float, list[int]]:
    from billing_graphql.db.engine import Database
    from billing_graphql.jobs.webhook_delivery import WebhookWorker

    databases = [Database.from_url(url) for url in urls]
    workers = [WebhookWorker(db, production=False, batch_size=batch) for db in databases]
    try:
        started = time.perf_counter()
        done = list(await asyncio.gather(*(worker.run_until_idle(max_rounds=100_000) for worker in workers)))
        elapsed = time.perf_counter() - started
    finally:
        for worker, db in zip(workers, databases, strict=True):
            await worker.close()
            await db.dispose()
    return elapsed, done


async def _raw_baseline(receiver: str, events: int, batch: int) -> None:
    """The same number of POSTs with a bare httpx client, batch by batch: the ceiling here."""
    body = json.dumps({"type": "invoice.paid", "timestamp": "2026-01-01T00:00:00Z", "data": {"total": 299000}})
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=15) as client:
        started = time.perf_counter()
        for start in range(0, events, batch):
            await asyncio.gather(*(client.post(receiver + "/raw", content=body, headers={"webhook-id": f"raw_{i}"})
                                   for i in range(start, min(start + batch, events))))
        elapsed = time.perf_counter() - started
    print(f"{'raw httpx':10s} (no database, no signing)  events={events} batch={batch}: {elapsed:6.2f} s, "
          f"{events / elapsed:7.1f} posts/s")


async def _run(name: str, url: str, receiver: str, secret: str, events: int, batch: int, worker_counts) -> None:
    db, organization_id = await _prepare(url, receiver + "/hooks", secret)
    try:
        for workers in worker_counts:
            before = httpx.get(receiver).json()
            await _emit(db, organization_id, events)
            elapsed, done = await _deliver([url] * workers, batch)
            after = httpx.get(receiver).json()
            received = after["received"] - before["received"]
            duplicates = after["duplicates"] - before["duplicates"]
            print(f"{name:10s} workers={workers} events={events} batch={batch}: {elapsed:6.2f} s, "
                  f"{events / elapsed:7.1f} deliveries/s (received {received}, duplicates {duplicates}, "
                  f"bad signatures {after['bad']}, attempts per worker {done})")
            if received != events or duplicates:
                raise SystemExit(f"{name}: expected {events} deliveries exactly once")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--postgres", default=os.environ.get("BILLING_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    args = parser.parse_args()
    from billing_graphql.domain.webhooks import new_secret

    secret = new_secret()
    receiver = _start_receiver(args.port, secret)
    base = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(_raw_baseline(base, args.events, args.batch))
        with tempfile.TemporaryDirectory() as folder:
            sqlite_url = f"sqlite+aiosqlite:///{folder}/bench.db"
            asyncio.run(_run("sqlite", sqlite_url, base, secret, args.events, args.batch, [1]))
        name = f"bench_webhooks_{os.getpid()}"
        postgres_url = asyncio.run(_postgres_database(args.postgres, name))
        try:
            asyncio.run(_run("postgresql", postgres_url, base, secret, args.events, args.batch, [1, 2]))
        finally:
            asyncio.run(_postgres_database(args.postgres, name, drop=True))
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
