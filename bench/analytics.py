"""How long `analytics` takes over many subscriptions and 12 months, on PostgreSQL.

    .venv/bin/python bench/analytics.py [--subscriptions 10000] [--runs 9] [--server postgresql+asyncpg://postgres@127.0.0.1:5432/test]

Creates a scratch database on the server, migrates it, seeds ``--subscriptions`` organizations
with a subscription each started over 2025 (a quarter upgraded 15 days later, a seventh canceled
40 days later, a paid first invoice each, a failed attempt for a tenth: tests/analytics_factories.py,
the MRR history written by the session listeners as in production), then times, warm, the
service call (``revenue_analytics``: the four SQL statements and their assembly) and the whole
GraphQL request over ASGI (auth, execution, serialization) for 2025-01-01..2025-12-31 in USD.
Prints the medians and the statement count; drops the database. Figures go into notes, never
into a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from billing_graphql.db.engine import Database, make_engine  # noqa: E402
from billing_graphql.db.migrate import migrate  # noqa: E402
from billing_graphql.db.models import SubscriptionMrrRevision  # noqa: E402
from billing_graphql.services.analytics.report import revenue_analytics  # noqa: E402
from tests.analytics_factories import seed_history  # noqa: E402

NOW = datetime(2026, 1, 15, tzinfo=UTC)
QUERY = (ROOT / "queries" / "admin" / "Analytics.graphql").read_text()


async def _admin(server: str, sql: str) -> None:
    engine = make_engine(server)
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(sql))
    await engine.dispose()


async def _time(call, runs: int) -> list[float]:
    await call()  # warm: caches, prepared statements, pool
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--server", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    name = f"bench_analytics_{uuid.uuid4().hex[:8]}"
    await _admin(args.server, f'CREATE DATABASE "{name}"')
    url = make_url(args.server).set(database=name).render_as_string(hide_password=False)
    db = Database.from_url(url)
    try:
        await migrate(db.engine)
        started = time.perf_counter()
        await seed_history(db, args.subscriptions, months=12)
        seeded = time.perf_counter() - started
        async with db.read() as session:
            revisions = await session.scalar(select(func.count()).select_from(SubscriptionMrrRevision))
            await session.execute(text("ANALYZE"))
        print(f"seeded {args.subscriptions} subscriptions, {revisions} MRR revisions in {seeded:.1f}s")

        async def service():
            return await revenue_analytics(db, first=date(2025, 1, 1), last=date(2025, 12, 31), currency="USD",
                                           now=NOW)

        report = await service()
        print(f"MRR now {report.mrr}, months {len(report.months)}, new in 2025 "
              f"{sum(m.new_subscriptions for m in report.months)}")
        service_ms = await _time(service, args.runs)

        import httpx

        from billing_graphql.app import create_app
        from billing_graphql.domain.roles import Role
        from billing_graphql.services.platform.api_keys import create_api_key
        from billing_graphql.settings import Settings
        from tests.helpers import count_statements

        _, key = await create_api_key(db, None, role=Role.SUPER_ADMIN, organization_id=None, label="bench", now=NOW)
        app = create_app(Settings(database_url=url, rate_limit=0), db=db, freeze_gc=False)
        variables = {"from": "2025-01-01", "to": "2025-12-31", "currency": "USD"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            async def request():
                response = await client.post("/graphql", json={"query": QUERY, "variables": variables},
                                             headers={"authorization": f"Bearer {key}"})
                assert response.status_code == 200 and "errors" not in response.json(), response.text

            http_ms = await _time(request, args.runs)
            with count_statements(db) as counted:
                await request()
        print(f"service revenue_analytics: median {statistics.median(service_ms):.1f} ms "
              f"(min {min(service_ms):.1f}, max {max(service_ms):.1f}) over {args.runs} runs")
        print(f"GraphQL request (ASGI, in process): median {statistics.median(http_ms):.1f} ms "
              f"(min {min(http_ms):.1f}, max {max(http_ms):.1f}), {counted.count} SQL statements")
    finally:
        await db.dispose()
        await _admin(args.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
