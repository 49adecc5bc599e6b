"""Fixtures: every service and API test runs on SQLite and on PostgreSQL.

Each pytest-xdist worker gets its own SQLite file and its own PostgreSQL database, migrated
once; every test starts from empty tables (reference data from the migrations kept): on SQLite a
copy of the migrated file, on PostgreSQL the tables emptied.
PostgreSQL comes from BILLING_TEST_POSTGRES_URL; when it is unreachable its tests skip,
except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_graphql.db.engine import Database, make_engine
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Base
from tests.helpers import REFERENCE_METRICS

if TYPE_CHECKING:
    from tests.helpers import GraphQLClient, Keys

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgres"]
KEPT_TABLES = {"alembic_version", "metrics", "tax_rates"}


def _worker() -> str:
    """This checkout's and this xdist worker's prefix: runs from other checkouts never collide."""
    checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]
    return f"{checkout}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _running(pid: str) -> bool:
    """Whether the process ``pid`` (a test run's, from its database's name) is still alive."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _postgres_server_url() -> str:
    return os.environ.get("BILLING_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def _create_postgres_database() -> str:
    server = make_url(_postgres_server_url())
    name = f"bgtest_{_worker()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(server.render_as_string(hide_password=False))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            # Drop what earlier, interrupted runs of this worker left behind: not a database of a test
            # run of this checkout that is still going (its process is alive), such as another terminal's.
            stale = await connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
                {"pattern": f"bgtest_{_worker()}_%"},
            )
            for (stale_name,) in stale.all():
                if not _running(stale_name.removeprefix(f"bgtest_{_worker()}_").split("_")[0]):
                    await connection.execute(text(f'DROP DATABASE IF EXISTS "{stale_name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    server = make_url(_postgres_server_url())
    name = make_url(url).database
    admin = make_engine(server.render_as_string(hide_password=False))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def _migrate_url(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / f"billing-{_worker()}.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate_url(url))
    with sqlite3.connect(path) as source, sqlite3.connect(_migrated(path)) as copy:
        source.backup(copy)  # the migrated, empty database each test starts from
    return url


def _migrated(path: Path) -> Path:
    return path.with_name(f"{path.stem}-migrated.db")


def _fresh_sqlite(url: str) -> None:
    """Put the migrated, empty file in place of the worker's database (2 ms; emptying its ~40 tables
    with DELETE took 70 ms). A process still holding the old file keeps the old file."""
    path = Path(make_url(url).database)
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    staged = path.with_name(f"{path.stem}-staged.db")
    shutil.copyfile(_migrated(path), staged)
    os.replace(staged, path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        url = asyncio.run(_create_postgres_database())
    except Exception as exc:  # unreachable server, refused login, ...
        reason = f"PostgreSQL at {_postgres_server_url()} is unreachable: {exc!r}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    asyncio.run(_migrate_url(url))
    yield url
    asyncio.run(_drop_postgres_database(url))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{backend}_url")


async def _empty_tables(db: Database) -> None:
    tables = [table for table in reversed(Base.metadata.sorted_tables) if table.name not in KEPT_TABLES]
    async with db.write() as session:
        if db.is_sqlite:
            for table in tables:
                await session.execute(table.delete())
        else:
            # One DELETE per table, children first, in one round trip. TRUNCATE of 40 small tables
            # costs 0.8-1 s a test here (it makes and syncs new files); this costs 10-20 ms.
            deletes = " ".join(f'DELETE FROM "{table.name}";' for table in tables)
            await session.execute(text(f"DO $$ BEGIN {deletes} END $$"))
        # Reference data stays as the migrations left it.
        await session.execute(
            text("DELETE FROM metrics WHERE code NOT IN :codes").bindparams(
                bindparam("codes", expanding=True)
            ),
            {"codes": list(REFERENCE_METRICS)},
        )
        await session.execute(text("DELETE FROM tax_rates WHERE name <> 'PPN'"))


_ENGINES: dict[str, AsyncEngine] = {}


def _engine(url: str) -> AsyncEngine:
    """The worker's one engine for ``url``. SQLAlchemy keeps its compiled statements per engine (its
    dialect is part of the cache key): with an engine per test, every test compiled each of its
    statements again, about a sixth of the suite's time. Each test still has its own ``Database`` and
    its own connections: the pool is emptied when the test ends."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    if database_url.startswith("sqlite"):
        _fresh_sqlite(database_url)
    database = Database(_engine(database_url))
    if not database.is_sqlite:
        await _empty_tables(database)
    try:
        yield database
    finally:
        await database.dispose()  # closes the connections (opened on this test's event loop)


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest):
    """The test app's settings; a test may override some with ``indirect`` parametrization."""
    from tests.helpers import test_settings

    return test_settings(database_url, **getattr(request, "param", {}))


@pytest.fixture(scope="session")
def graphql_schema():
    """The test app's schema, built once per run (the ``settings`` fixture differs only in its
    database URL, which the schema does not read)."""
    from billing_graphql.graphql.schema import schema_for
    from tests.helpers import test_settings

    return schema_for(test_settings("sqlite+aiosqlite://"))


@pytest.fixture
def gateway_overrides() -> dict:
    """Gateways the test app uses instead of the configured ones (a test module overrides this)."""
    return {}


_APPS: dict = {}


def _app_for(settings, schema):
    """The app of earlier tests with the same settings, or None (then built anew). Building one
    registers ~90 route handlers (0.15-0.5 s); the rest of what a test may change lives in
    ``app.state``, which ``_hand_over`` replaces. A rate-limited app keeps counts: never shared."""
    from billing_graphql.app import create_app

    if settings.rate_limit:
        return None
    key = (settings, id(schema))
    if key not in _APPS:
        _APPS[key] = create_app(settings, db=None, schema=schema, freeze_gc=False)
    return _APPS[key]


def _hand_over(app, db: Database, gateways) -> None:
    """This test's database, gateways and empty live registries in a shared app's state."""
    from billing_graphql.app import live_state

    app.state.db = db
    app.state.gateways = gateways
    for name, value in live_state(app.state.settings).items():
        setattr(app.state, name, value)


def app_on(db: Database, settings, schema, gateways=None):
    """An app of these settings serving ``db``: one built by an earlier test, handed this test's state,
    or a new one."""
    from billing_graphql.app import create_app
    from billing_graphql.gateways import GatewayRegistry

    gateways = gateways or GatewayRegistry(settings)
    app = _app_for(settings, schema)
    if app is None:
        return create_app(settings, db=db, gateways=gateways, schema=schema, freeze_gc=False)
    _hand_over(app, db, gateways)
    return app


@pytest.fixture
async def api(db: Database, settings, graphql_schema, gateway_overrides) -> AsyncIterator["GraphQLClient"]:
    """A GraphQL client over HTTP against the app, on this test's database."""
    import httpx

    from billing_graphql.gateways import GatewayRegistry
    from tests.helpers import GraphQLClient

    # httpx's ASGI transport runs the app on this test's event loop (Litestar's own test
    # client runs it on another, where the database's connections cannot be used).
    app = app_on(db, settings, graphql_schema, GatewayRegistry(settings, overrides=gateway_overrides))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield GraphQLClient(client, db, app)


@pytest.fixture
async def keys(db: Database) -> "Keys":
    """An organization 'acme' with one API key per role (and a super-admin key)."""
    from tests.helpers import make_keys

    return await make_keys(db)
