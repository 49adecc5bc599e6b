"""`billing-graphql serve | migrate | seed-demo | create-api-key | export-schema`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from sqlalchemy import or_, select
from strawberry import relay

from billing_graphql.db.engine import Database
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Organization
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.roles import Role
from billing_graphql.settings import Settings, SettingsError


async def _migrate(settings: Settings) -> None:
    db = Database.from_url(settings.database_url)
    try:
        await migrate(db.engine)
    finally:
        await db.dispose()


async def _seed_demo(settings: Settings) -> None:
    from billing_graphql.demo import seed_demo
    from billing_graphql.services.platform.clock import current_time

    await _migrate(settings)
    db = Database.from_url(settings.database_url)
    try:
        keys = await seed_demo(db, await current_time(db, test_clock=settings.test_clock), settings)
    finally:
        await db.dispose()
    for role, key in keys.items():
        print(f"{role.value}={key}")


async def _create_api_key(settings: Settings, role: Role, org: str | None, label: str) -> str:
    from billing_graphql.services.platform.api_keys import create_api_key
    from billing_graphql.services.platform.clock import current_time

    await _migrate(settings)
    db = Database.from_url(settings.database_url)
    try:
        organization_id = None
        if org is not None:
            async with db.read() as session:
                organization_id = await _find_organization(session, org)
            if organization_id is None:
                raise SystemExit(f"error: no organization {org!r} (give its id or external id)")
        now = await current_time(db, test_clock=settings.test_clock)
        _, plain = await create_api_key(db, None, role=role, organization_id=organization_id, label=label, now=now)
        return plain
    finally:
        await db.dispose()


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


# uvloop and httptools (a raw route here: ~4,100 req/s on asyncio + h11, ~9,800 on these); no line per
# request (--access-log turns it on). bench/serve_plain.py serves the bench's plain routes with the same.
SERVER_OPTIONS = {"loop": "uvloop", "http": "httptools", "log_level": "info", "access_log": False}


def _serve(settings: Settings, host: str, port: int, workers: int, access_log: bool = False) -> None:
    import uvicorn

    asyncio.run(_migrate(settings))
    if workers > 1 and settings.is_sqlite:
        print("note: several workers share one SQLite file; writes queue on its lock", file=sys.stderr)
    uvicorn.run(
        "billing_graphql.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **{**SERVER_OPTIONS, "access_log": access_log},
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-graphql", description="A GraphQL billing gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="seed demo data first and print its API keys")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")

    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed-demo", help="demo catalog, organization and one API key per role (printed)")

    key = commands.add_parser("create-api-key", help="create an API key and print it")
    key.add_argument("--role", required=True, choices=[role.value for role in Role])
    key.add_argument("--org", help="organization id or external id (OWNER, ADMIN, MEMBER keys)")
    key.add_argument("--label", default="")

    commands.add_parser("export-schema", help="print the GraphQL SDL")
    commands.add_parser("export-manifest", help="print queries/manifest.json (Apollo's persisted-query manifest)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export-manifest":
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
            asyncio.run(_migrate(settings))
            print("database is up to date")
        elif args.command == "seed-demo":
            asyncio.run(_seed_demo(settings))
        elif args.command == "create-api-key":
            print(asyncio.run(_create_api_key(settings, Role(args.role), args.org, args.label)))
        elif args.command == "serve":
            if args.demo:
                asyncio.run(_seed_demo(settings))
            _serve(settings, args.host, args.port, args.workers, args.access_log)
    except BillingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
