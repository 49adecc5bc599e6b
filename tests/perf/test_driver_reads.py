"""The SQL tier's statements run on the driver's own connection (``Database.fetch``, ``db.prepared.Prepared``):
bound as SQLAlchemy binds them, one connection per request shared with its read session, a write of the request
seen, a failed or cancelled read giving its connection back (the next read has it), and every statement counted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, select, text

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Organization
from billing_graphql.db.prepared import Prepared
from tests.helpers import T0, count_statements


def _organization(name: str) -> Organization:
    return Organization(id=uuid.uuid4(), name=name, external_id=f"{name}-{uuid.uuid4().hex[:8]}",
                        created_at=T0, updated_at=T0)


def _count(db: Database) -> Prepared:
    return Prepared.of(select(func.count()).select_from(Organization), db.engine.dialect)


async def test_values_are_bound_as_sqlalchemy_binds_them(db):
    """A uuid and an aware time (stored as text on SQLite) find the row SQLAlchemy's own execution finds."""
    organization = _organization("bound")
    async with db.write() as session:
        session.add(organization)
    statement = select(Organization.name, Organization.external_id).where(
        Organization.id == bindparam("id"), Organization.created_at <= bindparam("at"),
        Organization.name == bindparam("name", "bound"))
    prepared = Prepared.of(statement, db.engine.dialect)
    values = {"id": organization.id, "at": T0 + timedelta(seconds=1)}
    rows = await prepared.rows(db, values)
    async with db.read() as session:
        expected = (await session.execute(statement, values)).all()
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected] == [("bound", organization.external_id)]
    assert await prepared.rows(db, {**values, "at": T0 - timedelta(seconds=1)}) == []
    assert await prepared.rows(db, {**values, "name": "other"}) == []  # a value given overrides the default


async def test_a_request_reads_on_the_connection_of_its_read_session(db):
    async with db.request_scope():
        async with db.read() as session:
            before = await session.scalar(select(func.count()).select_from(Organization))
        assert db.engine.pool.checkedout() == 1
        assert (await _count(db).rows(db, {}))[0][0] == before
        assert db.engine.pool.checkedout() == 1  # the same connection, not a second one
    assert db.engine.pool.checkedout() == 0


async def test_a_read_after_the_requests_write_sees_it(db):
    async with db.request_scope():
        async with db.read() as session:  # a snapshot begun before the write (SQLite keeps it)
            before = await session.scalar(select(func.count()).select_from(Organization))
        async with db.write() as session:
            session.add(_organization("later"))
        assert (await _count(db).rows(db, {}))[0][0] == before + 1


async def test_a_failed_read_gives_its_connection_back(db):
    async with db.request_scope():
        with pytest.raises(Exception, match="no_such_table"):
            await db.fetch("SELECT * FROM no_such_table", [])
        assert db.engine.pool.checkedout() == 0
        assert (await db.fetch("SELECT 1", []))[0][0] == 1


async def test_a_cancelled_read_leaves_its_connection_to_the_next(database_url, backend):
    if backend == "sqlite":
        pytest.skip("SQLite's statement runs to its end on the driver's thread")
    small = Database.from_url(database_url, pool_size=1)  # the next read could only have the same connection
    try:
        read = asyncio.create_task(small.fetch("SELECT pg_sleep(5)", []))
        await asyncio.sleep(0.2)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert small.engine.pool.checkedout() == 0
        assert [tuple(row) for row in await asyncio.wait_for(small.fetch("SELECT 1", []), timeout=2)] == [(1,)]
    finally:
        await small.dispose()


async def test_every_read_is_counted_as_a_statement(db):
    with count_statements(db, cold_credentials=False) as counter:
        await db.fetch(_count(db).text, [])
        await _count(db).rows(db, {})
    assert len(counter.statements) == 2
    assert all("count(*)" in statement for statement in counter.statements)


async def test_a_sqlalchemy_session_still_reads_after_driver_reads(db):
    for _ in range(3):
        await _count(db).rows(db, {})
    async with db.read() as session:
        assert await session.scalar(text("SELECT 1")) == 1


async def test_a_long_statement_stays_prepared(database_url, backend):
    """The invoices page's statement is 26 KB; asyncpg keeps statements over 15 KiB prepared only when told to
    (``make_engine``): without it, PostgreSQL parsed and planned the page again for every request."""
    if backend == "sqlite":
        pytest.skip("SQLite prepares nothing across statements here")
    small = Database.from_url(database_url, pool_size=1)  # every read on the same connection
    long = "SELECT 1 AS one /* " + "x" * 20_000 + " */"
    try:
        for _ in range(3):
            assert [tuple(row) for row in await small.fetch(long, [])] == [(1,)]
        prepared = await small.fetch("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", [long])
        assert prepared[0][0] == 1
    finally:
        await small.dispose()


async def test_a_compiled_statements_constants_are_written_in_its_text(db: Database):
    """``Compiled`` writes the constants a statement was made with in its text (``constants_written``); only what is
    given at each execution stays a parameter. PostgreSQL's plan for any parameters cannot use a constant that is a
    parameter, and with it costlier than a plan made for each execution, it planned each execution anew."""
    from billing_graphql.db.prepared import Compiled

    statement = select(Organization.name).where(Organization.external_id == bindparam("external_id"),
                                                Organization.name != "nobody's", Organization.credit_balance >= 0)
    prepared = Compiled(statement).on(db.engine.dialect)
    assert [name for name, _, _ in prepared.parameters] == ["external_id"]
    assert "'nobody''s'" in prepared.text
    from tests.factories import make_organization

    await make_organization(db, "Const Ltd", external_id="const")
    assert await prepared.values(db, {"external_id": "const"}) == [("Const Ltd",)]
