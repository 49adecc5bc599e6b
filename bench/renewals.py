"""Billing-run throughput: renewals per second for N due subscriptions (reported, never asserted).

    .venv/bin/python -m bench.renewals --count 10000 --workers 4 \
        --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench_renewals
    .venv/bin/python -m bench.renewals --count 2000 --processes 2 \
        --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench_renewals
    .venv/bin/python -m bench.renewals --count 10000 --database sqlite+aiosqlite:///./bench-renewals.db

Seeds N organizations, each with a default sandbox card and an ACTIVE monthly subscription
(plan with seats and PPN) whose period ended, into a fresh database (the tables of the run's
kind are emptied first), then runs the billing run (``--workers`` concurrent runs in one process;
``--processes`` processes at once, started together once each is connected; SQLite serializes
them anyway) and prints subscriptions, invoices, seconds, renewals/s, the CPU time the run's
processes spent per renewal (steady when other work shares the machine, where renewals/s is not;
PostgreSQL's own time not counted) and the load average at the end. Each renewal is a full one:
lock, price, invoice with lines and tax, gapless number, payment, sandbox charge, outbox events,
commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from billing_graphql.db.engine import Database
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Organization, PaymentMethod, PaymentMethodType, Plan, Subscription
from billing_graphql.domain.periods import BillingPeriod, add_months
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import run_billing, run_config
from billing_graphql.settings import Settings

T0 = datetime(2026, 1, 5, tzinfo=UTC)


async def seed_due(db: Database, count: int, t0: datetime = T0) -> Plan:
    """``count`` organizations with a card and an ACTIVE subscription started at ``t0`` (due a
    month later), inserted in bulk."""
    plan = Plan(id=uuid.uuid4(), name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}", description="", currency="IDR",
                base_price_monthly=299000, base_price_annual=2990000, per_agent_price=50000,
                overage_message_price=0, included_agents=1, trial_days=0, is_active=True, sort_order=0,
                created_at=t0, updated_at=t0)
    end = add_months(t0, 1)
    async with db.write() as session:
        session.add(plan)
        await session.flush()
        for offset in range(0, count, 2000):
            chunk = range(offset, min(offset + 2000, count))
            orgs = [dict(id=uuid.uuid4(), name=f"Bench {i}", external_id=f"bench-{uuid.uuid4().hex}",
                         credit_balance=0, created_at=t0, updated_at=t0) for i in chunk]
            await session.execute(insert(Organization), orgs)
            await session.execute(insert(PaymentMethod), [
                dict(id=uuid.uuid4(), organization_id=o["id"], gateway="sandbox", gateway_payment_method_id="pm_card_visa",
                     type=PaymentMethodType.CREDIT_CARD, label="Visa 4242", brand="visa", last4="4242",
                     exp_month=12, exp_year=2030, is_default=True, created_at=t0) for o in orgs])
            await session.execute(insert(Subscription), [
                dict(id=uuid.uuid4(), organization_id=o["id"], plan_id=plan.id, status=SubscriptionStatus.ACTIVE,
                     billing_period=BillingPeriod.MONTHLY, period_anchor=t0, current_period_start=t0,
                     current_period_end=end, cancel_at_period_end=False, agent_count=2, payment_gateway="sandbox",
                     retry_count=0, created_at=t0, updated_at=t0) for o in orgs])
    return plan


async def _empty(db: Database) -> None:
    tables = ["payments", "invoice_lines", "invoices", "invoice_number_sequences", "outbox_events", "audit_events",
              "subscription_addons", "subscriptions", "payment_methods", "organizations"]
    async with db.write() as session:
        if db.is_sqlite:
            for table in tables:
                await session.execute(text(f"DELETE FROM {table}"))
        else:
            await session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))


async def bench(url: str, count: int, workers: int, batch: int, processes: int = 1) -> str:
    db = Database.from_url(url)
    try:
        await migrate(db.engine)
        await _empty(db)
        await seed_due(db, count)
    finally:
        await db.dispose()
    if processes > 1:
        runs = await _in_processes(url, processes, workers, batch)
    else:
        runs = [await _run(url, workers, batch)]
    seconds = max(run["ended"] for run in runs) - min(run["started"] for run in runs)
    invoices = sum(run["invoices"] for run in runs)
    errors = sum(run["errors"] for run in runs)
    cpu = sum(run["cpu"] for run in runs)
    dialect = url.split("+")[0].split(":")[0]
    return (f"{dialect}: {count} due subscriptions, {processes} process(es) x {workers} worker(s), batch {batch}, "
            f"{invoices} renewals ({errors} errors) in {seconds:.2f}s = {invoices / seconds:,.0f} renewals/s, "
            f"gateway CPU {1000 * cpu / max(invoices, 1):.2f} ms/renewal, load {os.getloadavg()[0]:.2f}")


async def _run(url: str, workers: int, batch: int, ready: Callable[[], None] | None = None) -> dict[str, float]:
    """The billing run over what ``bench`` seeded (``workers`` concurrent runs in this process),
    timed from when ``ready`` returns (the parent's go, for several processes)."""
    db = Database.from_url(url)
    try:
        settings = Settings(database_url=url, jwt_secret="x" * 32)
        config = run_config(settings, GatewayRegistry(settings))
        now = add_months(T0, 1) + timedelta(hours=1)
        async with db.read() as session:  # connected before the clock starts
            await session.execute(text("SELECT 1"))
        if ready is not None:
            ready()
        started, cpu = time.time(), time.process_time()
        results = await asyncio.gather(*[run_billing(db, config, now=now, batch=batch) for _ in range(workers)])
        ended = time.time()
        return {"started": started, "ended": ended, "cpu": time.process_time() - cpu,
                "invoices": sum(r.tally.invoices for r in results), "errors": sum(r.errors for r in results)}
    finally:
        await db.dispose()


async def _in_processes(url: str, processes: int, workers: int, batch: int) -> list[dict[str, float]]:
    """``processes`` child processes (``--child``), started together once each is connected."""
    children = [subprocess.Popen([sys.executable, "-m", "bench.renewals", "--child", "--database", url,
                                  "--workers", str(workers), "--batch", str(batch)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a child process did not start")
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    runs = []
    for child in children:
        out, _ = await asyncio.to_thread(child.communicate)
        if child.returncode:
            raise RuntimeError(f"a child process failed ({child.returncode})")
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def _child(url: str, workers: int, batch: int) -> None:
    def ready() -> None:
        print("ready", flush=True)
        sys.stdin.readline()

    print(json.dumps(asyncio.run(_run(url, workers, batch, ready))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="concurrent runs in each process")
    parser.add_argument("--processes", type=int, default=1, help="processes running the billing run at once")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.database, args.workers, args.batch)
        return
    print(asyncio.run(bench(args.database, args.count, args.workers, args.batch, args.processes)))


if __name__ == "__main__":
    main()
