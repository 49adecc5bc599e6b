"""The command line: seed-demo prints one key per role, create-api-key prints the key alone."""

from __future__ import annotations

import pytest

from billing_graphql.cli import main


@pytest.fixture
def sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    return tmp_path / "cli.db"


def test_seed_demo_then_create_api_key(sqlite_file, capsys):
    assert main(["seed-demo"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == ["SUPER_ADMIN", "OWNER", "ADMIN", "MEMBER", "PARTNER"]
    assert all(line.split("=", 1)[1].startswith("bgk_") for line in lines)
    assert main(["create-api-key", "--role", "ADMIN", "--org", "demo", "--label", "ops"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("bgk_") and "\n" not in key
    # Seeding again keeps one catalog and prints fresh keys.
    assert main(["seed-demo"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5


def test_create_api_key_for_unknown_organization_fails(sqlite_file):
    with pytest.raises(SystemExit, match="no organization"):
        main(["create-api-key", "--role", "OWNER", "--org", "nope"])


def test_bad_setting_is_reported_with_its_name(monkeypatch, capsys):
    monkeypatch.setenv("BILLING_GRAPHIQL", "perhaps")
    assert main(["migrate"]) == 2
    assert "BILLING_GRAPHIQL" in capsys.readouterr().err


def test_record_usage_adds_to_the_demo_months_usage(sqlite_file, capsys):
    import asyncio

    from sqlalchemy import select

    from billing_graphql.db.engine import Database
    from billing_graphql.db.models import Metric, Organization, UsageCounter

    assert main(["seed-demo"]) == 0
    capsys.readouterr()

    async def messages() -> dict[str, int]:
        db = Database.from_url(f"sqlite+aiosqlite:///{sqlite_file}")
        try:
            async with db.read() as session:
                rows = (await session.execute(
                    select(Metric.code, UsageCounter.period_key, UsageCounter.value)
                    .join(Metric, Metric.id == UsageCounter.metric_id)
                    .join(Organization, Organization.id == UsageCounter.organization_id)
                    .where(Organization.external_id == "demo")
                )).all()
        finally:
            await db.dispose()
        return {f"{code}:{key}": value for code, key, value in rows}

    seeded = asyncio.run(messages())
    # Three months of usage: both counters over the billing months, and the gauges (demo_story.DEMO_GAUGES).
    assert seeded["agents:current"] == 9 and seeded["contacts:current"] == 9_150
    assert sum(value for name, value in seeded.items() if name.startswith("messages:")) > 60_000
    assert main(["record-usage", "--org", "demo", "--metric", "agents", "--quantity", "11"]) == 0
    assert "recorded 11 agents" in capsys.readouterr().out
    assert asyncio.run(messages())["agents:current"] == 11
    assert main(["record-usage", "--org", "demo", "--metric", "nope", "--quantity", "1"]) == 1
    with pytest.raises(SystemExit, match="no organization"):
        main(["record-usage", "--org", "nobody", "--metric", "agents", "--quantity", "1"])


@pytest.fixture
def no_registered_documents(tmp_path, monkeypatch):
    """An installation without the registered documents (as the wheel was before it carried them)."""
    from billing_graphql.graphql import persisted

    monkeypatch.setattr(persisted, "QUERIES_DIR", tmp_path / "queries")


@pytest.fixture
def served(monkeypatch):
    """The uvicorn start of ``serve``, recorded instead of run."""
    import billing_graphql.cli as cli

    calls: list[tuple] = []
    monkeypatch.setattr(cli, "_serve", lambda *args, **options: calls.append(args))
    return calls


def test_serve_refuses_to_start_with_trusted_documents_and_none_registered(
        sqlite_file, no_registered_documents, served, monkeypatch, capsys):
    monkeypatch.setenv("BILLING_TRUSTED_DOCUMENTS", "partner")
    assert main(["serve"]) == 1
    assert served == []
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: BILLING_TRUSTED_DOCUMENTS=partner but there are no registered documents")
    assert "manifest.json" in line


def test_serve_starts_without_registered_documents_when_they_are_not_required(
        sqlite_file, no_registered_documents, served, monkeypatch):
    monkeypatch.setenv("BILLING_TRUSTED_DOCUMENTS", "off")
    assert main(["serve"]) == 0
    assert len(served) == 1


@pytest.fixture
def cli_database(database_url, monkeypatch):
    """The test database of this backend (SQLite, PostgreSQL), emptied, as the CLI's BILLING_DATABASE_URL."""
    import asyncio

    from billing_graphql.db.engine import Database
    from tests.conftest import _empty_tables

    async def empty() -> None:
        db = Database.from_url(database_url)
        try:
            await _empty_tables(db)
        finally:
            await db.dispose()

    asyncio.run(empty())
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    return database_url


def _live_keys(url: str) -> list[tuple[str, str]]:
    """(role, label) of every unrevoked API key."""
    import asyncio

    from sqlalchemy import select

    from billing_graphql.db.engine import Database
    from billing_graphql.db.models import ApiKey

    async def read() -> list[tuple[str, str]]:
        db = Database.from_url(url)
        try:
            async with db.read() as session:
                rows = (await session.execute(
                    select(ApiKey.role, ApiKey.label).where(ApiKey.revoked_at.is_(None))
                )).all()
        finally:
            await db.dispose()
        return sorted((role.value, label) for role, label in rows)

    return asyncio.run(read())


def test_create_api_key_json_prints_the_key_and_its_id_for_grant_partner(cli_database, capsys):
    import json

    assert main(["seed-demo"]) == 0
    capsys.readouterr()
    assert main(["create-api-key", "--role", "PARTNER", "--label", "analytics", "--json"]) == 0
    out = capsys.readouterr().out
    created = json.loads(out)
    assert out.count("\n") == 1
    assert created["key"].startswith("bgk_")
    assert created["role"] == "PARTNER" and created["organizationId"] is None and created["label"] == "analytics"
    assert main(["grant-partner", "--key-id", created["id"], "--org", "demo"]) == 0
    assert f"granted key {created['id']}" in capsys.readouterr().out
    # Without --json: the key alone, as before.
    assert main(["create-api-key", "--role", "OWNER", "--org", "demo"]) == 0
    plain = capsys.readouterr().out
    assert plain.startswith("bgk_") and plain.count("\n") == 1


def test_seeding_the_demo_again_revokes_the_previous_demo_keys(cli_database, served, capsys):
    demo_labels = [("ADMIN", "demo admin"), ("MEMBER", "demo member"), ("OWNER", "demo owner"),
                   ("PARTNER", "demo partner"), ("SUPER_ADMIN", "demo super_admin")]
    assert main(["seed-demo"]) == 0
    first = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert main(["create-api-key", "--role", "OWNER", "--org", "demo", "--label", "web"]) == 0
    capsys.readouterr()
    assert _live_keys(cli_database) == sorted(demo_labels + [("OWNER", "web")])
    # A restart of `serve --demo` on the same database: fresh keys, the previous demo keys revoked.
    assert main(["serve", "--demo"]) == 0
    second = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert set(second) == set(first) and not set(second.values()) & set(first.values())
    assert _live_keys(cli_database) == sorted(demo_labels + [("OWNER", "web")])
    assert main(["seed-demo"]) == 0
    capsys.readouterr()
    assert _live_keys(cli_database) == sorted(demo_labels + [("OWNER", "web")])


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("127.0.0.1", 8123, "http://localhost:8123"),
    ("0.0.0.0", 9000, "http://localhost:9000"),
    ("::", 9001, "http://localhost:9001"),
    ("billing.internal", 8080, "http://billing.internal:8080"),
    ("2001:db8::5", 8000, "http://[2001:db8::5]:8000"),
])
def test_serve_links_use_its_port_when_no_public_url_is_set(sqlite_file, monkeypatch, host, port, expected):
    """pdfUrl and portal links are built from BILLING_PUBLIC_URL, which the app (in every worker)
    reads from the environment: serve sets it from its host and port when it is not set."""
    import uvicorn

    from billing_graphql.settings import Settings

    monkeypatch.delenv("BILLING_PUBLIC_URL", raising=False)
    monkeypatch.setenv("BILLING_WORKERS", "0")
    started: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))
    assert main(["serve", "--no-worker", "--host", host, "--port", str(port)]) == 0
    assert started and started[0]["port"] == port
    assert Settings.from_env().public_url == expected


def test_serve_keeps_the_public_url_it_is_given(sqlite_file, monkeypatch):
    import uvicorn

    from billing_graphql.settings import Settings

    monkeypatch.setenv("BILLING_PUBLIC_URL", "https://billing.example.com/")
    monkeypatch.setenv("BILLING_WORKERS", "0")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    assert main(["serve", "--port", "9999"]) == 0
    assert Settings.from_env().public_url == "https://billing.example.com"


def test_ctrl_c_stops_run_billing_after_the_current_step_with_a_summary(cli_database):
    """A real `billing-graphql run-billing` process, interrupted (SIGINT) while it bills 150
    subscriptions: it finishes the subscription in hand, prints one summary line, exits 130."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import timedelta
    from pathlib import Path

    from billing_graphql.db.engine import Database
    from billing_graphql.db.models import Invoice
    from tests.factories import count_rows, make_organization, make_plan, make_subscription
    from tests.helpers import T0

    subscriptions = 150

    async def seed() -> None:
        db = Database.from_url(cli_database)
        try:
            plan = await make_plan(db)
            for number in range(subscriptions):
                organization = await make_organization(db, f"Org {number}")
                await make_subscription(db, organization.id, plan=plan)
        finally:
            await db.dispose()

    async def invoices() -> int:
        db = Database.from_url(cli_database)
        try:
            return await count_rows(db, Invoice)
        finally:
            await db.dispose()

    asyncio.run(seed())
    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(source), "BILLING_DATABASE_URL": cli_database}
    until = (T0 + timedelta(days=32)).isoformat()
    process = subprocess.Popen([sys.executable, "-m", "billing_graphql.cli", "run-billing", "--until", until],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(invoices()) == 0:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    (line,) = out.strip().splitlines()
    made = asyncio.run(invoices())
    assert 0 < made < subscriptions
    assert line.startswith("interrupted: examined ") and f" {made} invoices" in line, line


def test_deliver_webhooks_shows_progress_on_a_terminal_and_a_summary_on_ctrl_c(cli_database):
    """A real `billing-graphql deliver-webhooks` process with a terminal as stderr: a rich progress
    line (attempts, waiting) while it runs; Ctrl-C ends it with one summary line, no traceback."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(source), "BILLING_DATABASE_URL": cli_database, "COLUMNS": "120"}
    master, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "billing_graphql.cli", "deliver-webhooks"],
                               env=env, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while b"webhook delivery" not in shown and time.monotonic() < deadline and process.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 4096)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        while select.select([master], [], [], 0.2)[0]:
            try:
                shown += os.read(master, 4096)
            except OSError:
                break
    finally:
        process.kill()
        os.close(master)
    assert b"webhook delivery" in shown and b"0 attempts" in shown and b"0 waiting" in shown, shown
    assert b"Traceback" not in shown, shown
    assert process.returncode == 0
    (line,) = out.strip().splitlines()
    assert line.startswith("webhook delivery stopped: 0 attempts"), line


@pytest.fixture
def empty_database(backend, tmp_path, monkeypatch):
    """A database with no tables at all (SQLite: a new file; PostgreSQL: a new database, dropped after)."""
    import asyncio
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from billing_graphql.db.engine import make_engine
    from tests.conftest import _postgres_server_url

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        monkeypatch.setenv("BILLING_DATABASE_URL", url)
        yield url
        return
    server = make_url(_postgres_server_url())
    name = f"bgcli_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        engine = make_engine(server.render_as_string(hide_password=False))
        try:
            async with engine.connect() as connection:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server
        pytest.skip(f"PostgreSQL is unreachable: {exc!r}")
    url = server.set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("BILLING_DATABASE_URL", url)
    try:
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migrate_says_what_it_created_then_that_it_is_up_to_date(empty_database, capsys):
    from alembic.script import ScriptDirectory

    from billing_graphql.db.migrate import alembic_config
    from billing_graphql.db.models import Base

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert main(["migrate"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    tables = len(Base.metadata.tables) + 1  # and alembic_version
    assert line == f"created the schema at revision {head}: {tables} tables", line
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == f"database is up to date (revision {head})"


@pytest.mark.parametrize(("variable", "value", "command"), [
    ("BILLING_GRAPHIQL_ASSETS_DIR", "{tmp}/no-such-directory", "serve"),
    ("BILLING_GRAPHIQL_ASSETS_DIR", "{tmp}", "serve"),  # a directory without GraphiQL's scripts
    ("BILLING_DATABASE_URL", "sqlite+aiosqlite:///{tmp}/no-such-directory/billing.db", "migrate"),
    ("BILLING_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/billing", "migrate"),
    ("BILLING_DATABASE_URL", "sqlite+aiosqlite:///{tmp}/no-such-directory/billing.db", "serve"),
    ("BILLING_REDIS_URL", "localhost:6379", "serve"),
    ("BILLING_MAX_BODY_BYTES", "lots", "serve"),
    ("BILLING_TIMEZONE", "Asia/Atlantis", "serve"),
    ("BILLING_TIMEZONE", "WIB", "run-billing"),
])
def test_every_bad_setting_is_one_line_naming_the_variable(
        sqlite_file, served, monkeypatch, capsys, tmp_path, variable, value, command):
    monkeypatch.setenv(variable, value.format(tmp=tmp_path))
    assert main([command]) == 2
    assert served == []
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: {variable}"), line
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(("variable", "value"), [("BILLING_STRIPE_SECRET_KEY", "pk_live_wrong_kind"),
                                                 ("BILLING_STRIPE_WEBHOOK_SECRET", "not-a-whsec")])
def test_serve_stops_on_a_bad_stripe_value_naming_it(sqlite_file, served, monkeypatch, capsys, variable, value):
    for name, good in (("BILLING_STRIPE_SECRET_KEY", "sk_test_x"), ("BILLING_STRIPE_PUBLISHABLE_KEY", "pk_test_x"),
                       ("BILLING_STRIPE_WEBHOOK_SECRET", "whsec_x")):
        monkeypatch.setenv(name, good)
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    assert served == []
    assert variable in capsys.readouterr().err
