"""Test helpers: a GraphQL client over HTTP, a SQL statement counter, organizations with keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from strawberry import relay

from billing_graphql.db.engine import Database
from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.platform.auth import forget_verified
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.settings import Settings

REFERENCE_METRICS = ("agents", "contacts", "messages", "channels", "ai_agents", "integrations", "api_calls")
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def test_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url,
        jwt_secret="test-secret-of-enough-length-for-hs256",
        rate_limit=0,
        test_clock=False,
    )
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]


@asynccontextmanager
async def client_with(settings: Settings, db: Database) -> AsyncIterator[Any]:
    """An HTTP client of an app built with ``settings`` over ``db`` (for a setting the ``api``
    fixture does not have, such as another BILLING_TIMEZONE)."""
    import httpx

    from billing_graphql.app import create_app

    app = create_app(settings, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


def gid(type_name: str, key: uuid.UUID | str) -> str:
    return relay.to_base64(type_name, str(key))


@dataclass
class StatementCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
# PostgreSQL: the live subscribers' announcement a transaction that wrote outbox events sends just before its
# COMMIT (services/live/signals.py), one per transaction like the COMMIT itself, on no query's path.
LIVE_NOTIFY = "SELECT pg_notify("


@contextmanager
def count_statements(db: Database, *, cold_credentials: bool = True):
    """Count the SQL statements sent to the database inside the block (transaction control excluded,
    since SQLite's BEGIN is a statement and PostgreSQL's is not; so is PostgreSQL's pg_notify at
    commit). With ``cold_credentials`` the block starts with no credential verified in this
    process, so a request's count includes its
    key's lookup whatever time passed since the key's last use (a warm key saves that statement)."""
    counter = StatementCounter()
    if cold_credentials:
        forget_verified(db)

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.split(None, 1)[0].upper() not in TRANSACTION_CONTROL and not statement.startswith(LIVE_NOTIFY):
            counter.statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield counter
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)


class GraphQLClient:
    def __init__(self, client: Any, db: Database, app: Any = None) -> None:
        self.client = client
        self.db = db
        self.app = app

    async def post(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                   operation_name: str | None = None) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name:
            body["operationName"] = operation_name
        response = await self.client.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None,
                 operation_name: str | None = None) -> dict[str, Any]:
        """Post and require no top-level errors; return ``data``."""
        result = await self.post(query, variables, token=token, operation_name=operation_name)
        assert not result.get("errors"), result["errors"]
        return result["data"]


@dataclass
class Keys:
    organization_id: uuid.UUID
    super_admin: str
    owner: str
    admin: str
    member: str
    partner: str
    other_organization_id: uuid.UUID
    other_owner: str

    @property
    def organization_gid(self) -> str:
        return gid("Organization", self.organization_id)


async def make_keys(db: Database, now: datetime = T0) -> Keys:
    acme = await create_organization(db, None, name="Acme", external_id="acme", now=now)
    other = await create_organization(db, None, name="Globex", external_id="globex", now=now)

    async def key(role: Role, organization_id: uuid.UUID | None) -> str:
        _, plain = await create_api_key(db, None, role=role, organization_id=organization_id, label=role.value,
                                        now=now)
        return plain

    return Keys(
        organization_id=acme.id,
        super_admin=await key(Role.SUPER_ADMIN, None),
        owner=await key(Role.OWNER, acme.id),
        admin=await key(Role.ADMIN, acme.id),
        member=await key(Role.MEMBER, acme.id),
        partner=await key(Role.PARTNER, None),
        other_organization_id=other.id,
        other_owner=await key(Role.OWNER, other.id),
    )
