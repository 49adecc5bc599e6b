"""`billing-graphql serve | migrate | seed-demo | create-api-key | run-billing | deliver-webhooks | record-usage | grant-partner | export-schema`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import or_, select
from strawberry import relay

from billing_graphql.db.engine import Database
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Organization
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.roles import Role
from billing_graphql.settings import Settings, SettingsError


async def _migrate(settings: Settings) -> str:
    """Migrate to the head revision; what was done, in one line. A database that cannot be opened
    is a SettingsError naming BILLING_DATABASE_URL."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).parent.is_dir():  # said before aiosqlite's thread fails on it
        raise SettingsError(f"BILLING_DATABASE_URL: cannot open {url!s}: the directory "
                            f"{Path(url.database).parent} does not exist")
    db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
    try:
        try:
            async with db.engine.connect():
                pass
        except Exception as exc:  # unreachable server, refused login, missing database or directory
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SettingsError(f"BILLING_DATABASE_URL: cannot open {url!s}: {reason}") from None
        return (await migrate(db.engine)).summary()
    finally:
        await db.dispose()


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The migrated database of a command, disposed of when the command is done."""
    await _migrate(settings)
    db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
    try:
        yield db
    finally:
        await db.dispose()


async def _seed_demo(settings: Settings) -> None:
    from billing_graphql.demo import seed_demo
    from billing_graphql.services.platform.clock import current_time

    async with _database(settings) as db:
        keys = await seed_demo(db, await current_time(db, test_clock=settings.test_clock), settings)
    for role, key in keys.items():
        print(f"{role.value}={key}")


async def _create_api_key(settings: Settings, role: Role, org: str | None, label: str, *,
                          as_json: bool = False) -> str:
    """The plain key; with ``as_json`` one JSON object with the key's id too (what grant-partner takes)."""
    import json

    from billing_graphql.services.platform.api_keys import create_api_key
    from billing_graphql.services.platform.clock import current_time

    async with _database(settings) as db:
        organization_id = await _organization_id(db, org) if org is not None else None
        now = await current_time(db, test_clock=settings.test_clock)
        key, plain = await create_api_key(db, None, role=role, organization_id=organization_id, label=label, now=now)
    if not as_json:
        return plain
    return json.dumps({
        "id": str(key.id), "key": plain, "role": role.value,
        "organizationId": str(organization_id) if organization_id is not None else None, "label": key.label,
    })


async def _find_organization(session, reference: str) -> uuid.UUID | None:
    candidates: list[uuid.UUID] = []
    try:
        candidates.append(uuid.UUID(reference))
    except ValueError:
        pass
    try:
        candidates.append(uuid.UUID(relay.GlobalID.from_id(reference).node_id))
    except Exception:  # not a global ID
        pass
    return await session.scalar(
        select(Organization.id).where(or_(Organization.external_id == reference, Organization.id.in_(candidates)))
    )


async def _organization_id(db: Database, reference: str) -> uuid.UUID:
    """The organization named by its id, global id or external id; exits when there is none."""
    async with db.read() as session:
        organization_id = await _find_organization(session, reference)
    if organization_id is None:
        raise SystemExit(f"error: no organization {reference!r} (give its id or external id)")
    return organization_id


async def _record_usage(settings: Settings, org: str, metric: str, quantity: int) -> str:
    from billing_graphql.domain.usage import EventInput
    from billing_graphql.services.platform.clock import current_time
    from billing_graphql.services.usage.ingest import record_usage

    async with _database(settings) as db:
        organization_id = await _organization_id(db, org)
        now = await current_time(db, test_clock=settings.test_clock)
        event = EventInput(metric=metric, quantity=quantity, timestamp=now, idempotency_key=f"cli:{uuid.uuid4()}")
        result = await record_usage(db, organization_id=organization_id, events=[event], now=now)
    if result.errors:
        raise BillingError(result.errors[0].code, result.errors[0].message, result.errors[0].field)
    return f"recorded {quantity} {metric}"


async def _grant_partner(settings: Settings, key_id: str, org: str) -> str:
    from billing_graphql.services.platform.clock import current_time
    from billing_graphql.services.usage.partners import grant_partner_access

    async with _database(settings) as db:
        organization_id = await _organization_id(db, org)
        api_key_id = _uuid_of(key_id)
        if api_key_id is None:
            raise SystemExit(f"error: {key_id!r} is not an API key id")
        now = await current_time(db, test_clock=settings.test_clock)
        await grant_partner_access(db, None, api_key_id=api_key_id, organization_id=organization_id, now=now)
    return f"granted key {api_key_id} access to organization {organization_id}"


def _uuid_of(reference: str) -> uuid.UUID | None:
    """A UUID, or the UUID inside a global ID."""
    for candidate in (lambda: reference, lambda: relay.GlobalID.from_id(reference).node_id):
        try:
            return uuid.UUID(candidate())
        except Exception:  # neither form
            continue
    return None


def _parse_until(text: str | None):
    from datetime import datetime

    from billing_graphql.domain.clock import require_utc

    if text is None:
        return None
    try:
        return require_utc(datetime.fromisoformat(text.replace("Z", "+00:00")), "--until")
    except ValueError as exc:
        raise SystemExit(f"error: --until must be an ISO-8601 time with a zone (2026-03-01T00:00:00Z): {exc}") from None


def _stderr_console():
    """Progress goes to stderr (the terminal checked), leaving stdout to the summary line."""
    from rich.console import Console

    return Console(stderr=True)


class _Interrupted(Exception):
    """Raised from the billing run's progress callback, between two subscriptions, after Ctrl-C."""

    def __init__(self, tally) -> None:
        super().__init__("interrupted")
        self.tally = tally


@contextmanager
def _ctrl_c_flag() -> Iterator[Callable[[], bool]]:
    """Inside a running loop: the first Ctrl-C (SIGINT) only raises a flag, read between steps; a
    second one interrupts at once (KeyboardInterrupt, reported as one line by ``main``)."""
    loop = asyncio.get_running_loop()
    pressed = False

    def on_sigint() -> None:
        nonlocal pressed
        pressed = True
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # no signal handlers here (Windows, another thread)
        pass
    try:
        yield lambda: pressed
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _run_billing(settings: Settings, until, batch: int) -> tuple[str, bool]:
    """The run's summary line, and whether Ctrl-C stopped it (after the subscription in hand)."""
    import time

    from billing_graphql.gateways import GatewayRegistry
    from billing_graphql.jobs.billing_run import count_due, run_billing, run_config
    from billing_graphql.services.platform.clock import current_time

    started = time.perf_counter()
    async with _database(settings) as db:
        with _ctrl_c_flag() as interrupted:
            def step(tally) -> None:
                if interrupted():
                    raise _Interrupted(tally)

            try:
                now = until or await current_time(db, test_clock=settings.test_clock)
                config = run_config(settings, GatewayRegistry(settings))
                if not sys.stderr.isatty():
                    result = await run_billing(db, config, now=now, batch=batch, progress=step)
                else:
                    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                    total = await count_due(db, now, config)
                    with Progress(TextColumn("billing run"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  transient=True, console=_stderr_console()) as progress:
                        task = progress.add_task("billing", total=total)

                        def advance(tally) -> None:
                            progress.update(task, completed=tally.examined + tally.skipped)
                            step(tally)

                        result = await run_billing(db, config, now=now, batch=batch, progress=advance)
            except _Interrupted as stop:
                tally = stop.tally
                return (f"interrupted: examined {tally.examined} subscriptions, {tally.invoices} invoices, "
                        f"{tally.paid} paid, {tally.failed} failed, {tally.canceled} canceled, {tally.skipped} "
                        f"skipped in {time.perf_counter() - started:.2f}s; the rest is left for the next run"), True
            return result.summary(), interrupted()


async def _deliver_webhooks(settings: Settings) -> str:
    """The webhook delivery loop alone until Ctrl-C, with a progress line on a terminal (attempts
    made, deliveries waiting) like run-billing's; the summary line when it stops."""
    import time

    from billing_graphql.jobs.webhook_delivery import WebhookWorker
    from billing_graphql.services.webhooks import dispatch

    attempts = 0
    started = time.perf_counter()

    async def claimed(claims: list) -> None:
        nonlocal attempts
        attempts += len(claims)

    async with _database(settings) as db:
        worker = WebhookWorker(db, production=settings.production, on_claimed=claimed)
        with _ctrl_c_flag() as interrupted:
            runner = asyncio.create_task(worker.run())
            waiting = (await dispatch.backlog(db)).pending
            try:
                if sys.stderr.isatty():
                    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

                    with Progress(SpinnerColumn(), TextColumn(
                            "webhook delivery: {task.fields[attempts]} attempts, {task.fields[waiting]} waiting"
                            " (Ctrl-C stops)"), TimeElapsedColumn(), transient=True, console=_stderr_console()) as progress:
                        task = progress.add_task("webhooks", total=None, attempts=attempts, waiting=waiting)
                        while not interrupted() and not runner.done():
                            await asyncio.sleep(0.5)
                            waiting = (await dispatch.backlog(db)).pending
                            progress.update(task, attempts=attempts, waiting=waiting)
                else:
                    while not interrupted() and not runner.done():
                        await asyncio.sleep(0.2)
                    waiting = (await dispatch.backlog(db)).pending
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                await worker.close()
    return (f"webhook delivery stopped: {attempts} attempts in {time.perf_counter() - started:.0f}s, "
            f"{waiting} deliveries waiting")


def _prometheus_multiprocess_dir() -> str:
    """Several workers: metrics go through files in PROMETHEUS_MULTIPROC_DIR (a fresh temporary
    directory unless it is set; a set one is emptied, as prometheus-client asks between runs).
    The workers inherit the variable before they import billing_graphql.metrics."""
    import os
    import tempfile
    from pathlib import Path

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billing-graphql-metrics-")
    return directory


# uvicorn on uvloop and httptools, no line per request (``serve --access-log`` turns it on).
SERVER_OPTIONS = {"loop": "uvloop", "http": "httptools", "log_level": "info", "access_log": False}


def _log_config() -> dict:
    """uvicorn's logging, and the gateway's own loggers at INFO through uvicorn's handler (in every
    worker process: uvicorn applies it in each): the compiled queries at start-up, the billing runs."""
    from copy import deepcopy

    from uvicorn.config import LOGGING_CONFIG

    config = deepcopy(LOGGING_CONFIG)
    config["loggers"]["billing_graphql"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _documents_problem(settings: Settings) -> str | None:
    """Why serve must not start: trusted documents required, and none registered (graphql.persisted)."""
    from billing_graphql.graphql.persisted import TrustedDocuments

    return TrustedDocuments.load(require=settings.trusted_documents).missing()


def served_url(host: str, port: int) -> str:
    """The base URL of ``serve --host HOST --port PORT`` for links: localhost for the loopback and
    the wildcard addresses, the host itself (an IPv6 address in brackets) otherwise."""
    if host in {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost", ""}:
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _serve(settings: Settings, host: str, port: int, workers: int, *, worker: bool = True,
           access_log: bool = False, demo: bool = False) -> None:
    import os

    import uvicorn

    # The app factory reads its settings from the environment: start the in-process workers there,
    # and without BILLING_PUBLIC_URL the links it hands out (pdfUrl, portal) point at this port.
    os.environ["BILLING_WORKERS"] = "1" if worker else "0"
    if not os.environ.get("BILLING_PUBLIC_URL", "").strip():
        os.environ["BILLING_PUBLIC_URL"] = served_url(host, port)
    if demo:
        from billing_graphql.demo import demo_seller_environment

        if demo_seller_environment(os.environ):
            print("demo: documents are issued by the demo seller (set BILLING_SELLER_NAME, BILLING_SELLER_ADDRESS "
                  "and BILLING_SELLER_TAX_ID for your own)", file=sys.stderr)

    if workers > 1 and settings.is_sqlite:
        print("note: several workers share one SQLite file; writes queue on its lock", file=sys.stderr)
    if workers > 1:
        _prometheus_multiprocess_dir()
    uvicorn.run(
        "billing_graphql.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # X-Forwarded-For is believed only from BILLING_TRUSTED_PROXIES (http/rate_limit.py).
        **{**SERVER_OPTIONS, "access_log": access_log, "proxy_headers": False},
        ws_max_size=settings.max_body_bytes,  # a larger live message is refused before it is buffered (1009)
        ws_per_message_deflate=False,  # live messages are small: compressing each cost more CPU than it saved
        log_config=_log_config(),
    )


def _check_explorer_assets(settings: Settings) -> None:
    """BILLING_GRAPHIQL_ASSETS_DIR holds the scripts GraphiQL's page needs (else a SettingsError)."""
    if not (settings.graphiql and settings.graphiql_assets_dir):
        return
    from pathlib import Path

    from billing_graphql.http.explorer import ExplorerAssetsError, check_assets_dir

    try:
        check_assets_dir(Path(settings.graphiql_assets_dir))
    except ExplorerAssetsError as exc:
        raise SettingsError(f"BILLING_GRAPHIQL_ASSETS_DIR={settings.graphiql_assets_dir}: {exc}") from None


def _install_explorer(directory: str) -> int:
    import subprocess
    from pathlib import Path

    from billing_graphql.http.explorer import ExplorerAssetsError, install_explorer

    try:
        install_explorer(Path(directory))
    except (ExplorerAssetsError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"GraphiQL's scripts are in {directory}; serve with BILLING_GRAPHIQL_ASSETS_DIR={directory}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-graphql", description="A GraphQL billing gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="seed demo data first and print its API keys")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not run the background workers (billing run, webhook delivery) in this process")

    run = commands.add_parser("run-billing", help="bill what is due: trial ends, renewals, dunning retries")
    run.add_argument("--until", help="bring subscriptions up to this ISO-8601 time (default: now)")
    run.add_argument("--batch", type=int, default=100, help="subscriptions read per batch (default 100)")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")

    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed-demo", help="demo catalog, organization and one API key per role (printed)")

    key = commands.add_parser("create-api-key", help="create an API key and print it")
    key.add_argument("--role", required=True, choices=[role.value for role in Role])
    key.add_argument("--org", help="organization id or external id (OWNER, ADMIN, MEMBER keys)")
    key.add_argument("--label", default="")
    key.add_argument("--json", action="store_true",
                     help='print one JSON object: {"id", "key", "role", "organizationId", "label"}')

    commands.add_parser("deliver-webhooks", help="run the webhook delivery loop alone (until interrupted)")
    usage = commands.add_parser("record-usage", help="record one usage event now (COUNTER: add; GAUGE: set)")
    usage.add_argument("--org", required=True, help="organization id or external id")
    usage.add_argument("--metric", required=True, help="metric code, e.g. messages or agents")
    usage.add_argument("--quantity", required=True, type=int)

    partner = commands.add_parser("grant-partner", help="let a PARTNER key read an organization's usage snapshots")
    partner.add_argument("--key-id", required=True, help="the PARTNER key's id (UUID or global ID)")
    partner.add_argument("--org", required=True, help="organization id or external id")

    commands.add_parser("export-schema", help="print the GraphQL SDL")

    explorer = commands.add_parser(
        "install-explorer", help="npm install GraphiQL's scripts into DIR (then set BILLING_GRAPHIQL_ASSETS_DIR=DIR)"
    )
    explorer.add_argument("directory", metavar="DIR")
    commands.add_parser("export-manifest", help="print queries/manifest.json (Apollo's persisted-query manifest)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "install-explorer":
        return _install_explorer(args.directory)
    elif args.command == "export-manifest":
        from billing_graphql.graphql.persisted import build_manifest, manifest_text

        sys.stdout.write(manifest_text(build_manifest()))
        return 0
    if args.command == "export-schema":
        from billing_graphql.graphql.schema import export_sdl, schema

        sys.stdout.write(export_sdl(schema))
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "migrate":
            print(asyncio.run(_migrate(settings)))
        elif args.command == "seed-demo":
            asyncio.run(_seed_demo(settings))
        elif args.command == "create-api-key":
            print(asyncio.run(_create_api_key(settings, Role(args.role), args.org, args.label, as_json=args.json)))
        elif args.command == "run-billing":
            if args.batch < 1:
                print("error: --batch must be at least 1", file=sys.stderr)
                return 2
            try:
                summary, interrupted = asyncio.run(_run_billing(settings, _parse_until(args.until), args.batch))
            except KeyboardInterrupt:  # Ctrl-C twice: stopped at once, the step in hand rolled back
                print("interrupted: stopped at once; the subscription in hand was rolled back", file=sys.stderr)
                return 130
            print(summary)
            if interrupted:
                return 130
        elif args.command == "record-usage":
            print(asyncio.run(_record_usage(settings, args.org, args.metric, args.quantity)))
        elif args.command == "grant-partner":
            print(asyncio.run(_grant_partner(settings, args.key_id, args.org)))
        elif args.command == "serve":
            problem = _documents_problem(settings)
            if problem is not None:
                print(f"error: {problem}", file=sys.stderr)
                return 1
            _check_explorer_assets(settings)
            asyncio.run(_migrate(settings))
            if not settings.compiled_documents:
                print("note: BILLING_COMPILED_DOCUMENTS is off: registered queries run on the generic path",
                      file=sys.stderr)
            if args.demo:
                asyncio.run(_seed_demo(settings))
            _serve(settings, args.host, args.port, args.workers, worker=not args.no_worker, access_log=args.access_log,
                   demo=args.demo)
        elif args.command == "deliver-webhooks":
            try:
                print(asyncio.run(_deliver_webhooks(settings)))
            except KeyboardInterrupt:  # Ctrl-C twice: stopped at once
                print("webhook delivery stopped at once", file=sys.stderr)
    except BillingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # found once the command looked (the database, GraphiQL's scripts)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
