"""One read session per request; no ping per checkout; a connection the server closed is replaced."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import event, func, select, text

from billing_graphql.db.models import Organization
from tests.helpers import T0

INVOICES = "{ invoices(first: 5) { edges { node { id lines { kind } payments { id } refunds { id } } } } }"


async def test_a_request_checks_out_one_connection_for_all_its_reads(api, keys, db):
    checkouts = []
    listener = lambda *args: checkouts.append(1)  # noqa: E731
    await api.post(INVOICES, token=keys.owner)  # the first use of a key also records last_used_at (a write)
    event.listen(db.engine.sync_engine, "checkout", listener)
    try:
        result = await api.post(INVOICES, token=keys.owner)
    finally:
        event.remove(db.engine.sync_engine, "checkout", listener)
    assert "errors" not in result, result
    assert len(checkouts) == 1  # authentication, the page and three loader batches


async def test_reads_of_a_scope_share_one_session_and_take_turns(db):
    seen, inside = [], []

    async def reader() -> None:
        async with db.read() as session:
            inside.append(1)
            assert len(inside) == 1  # never two readers at once on the shared session
            seen.append(session)
            await session.scalar(select(func.count()).select_from(Organization))
            await asyncio.sleep(0)
            inside.pop()

    async with db.request_scope():
        await asyncio.gather(reader(), reader(), reader())
        async with db.read() as outer, db.read() as nested:  # nesting in one task reuses the session
            assert outer is nested
    assert len({id(session) for session in seen}) == 1


async def test_a_write_is_seen_by_the_reads_after_it(db):
    count = select(func.count()).select_from(Organization)
    async with db.request_scope():
        async with db.read() as session:
            before = await session.scalar(count)
        async with db.write() as session:
            session.add(Organization(id=uuid.uuid4(), name="Later", external_id=f"later-{uuid.uuid4().hex[:8]}",
                                     created_at=T0, updated_at=T0))
        async with db.read() as session:
            assert await session.scalar(count) == before + 1  # SQLite would keep the old snapshot


async def test_a_failed_read_does_not_poison_the_next_one(db):
    async with db.request_scope():
        with pytest.raises(Exception):
            async with db.read() as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        async with db.read() as session:
            assert await session.scalar(text("SELECT 1")) == 1


async def test_a_connection_the_server_closed_is_replaced_without_a_ping(db, backend):
    if backend != "postgres":
        pytest.skip("SQLite has no server to close a connection")
    assert db.engine.pool._pre_ping is False
    async with db.read() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    other = await asyncpg.connect(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:  # from outside the pool, which would hand back the very connection to terminate
        await other.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await other.close()
    await asyncio.sleep(0.2)  # the closed socket reaches asyncpg
    async with db.read() as session:
        assert await session.scalar(text("SELECT pg_backend_pid()")) != pid


async def test_more_first_uses_of_a_key_than_the_pool_has_connections_all_answer(database_url, settings,
                                                                                 graphql_schema, keys):
    """Each request's first use of a key in a minute stamps last_used_at (a write) after its read.
    With the read session held meanwhile, as many requests as connections would each hold one and
    wait for another until the pool gave up (seen in the bench: no answer for 30 s at c=32)."""
    import httpx

    from billing_graphql.app import create_app
    from billing_graphql.db.engine import Database, make_engine

    small = Database(make_engine(database_url, pool_size=2, pool_timeout=5))
    try:
        app = create_app(settings, db=small, schema=graphql_schema, freeze_gc=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            responses = await asyncio.gather(*(
                client.post("/graphql", json={"query": "{ viewer { role } }"},
                            headers={"authorization": f"Bearer {keys.owner}"})
                for _ in range(8)))
        assert [response.status_code for response in responses] == [200] * 8
        assert all(response.json() == {"data": {"viewer": {"role": "OWNER"}}} for response in responses)
    finally:
        await small.dispose()


async def test_a_read_still_running_when_its_request_ends_keeps_its_connection_until_done(database_url, backend):
    """A task of the request (a DataLoader batch nobody awaits any more) may still read when the request's
    scope ends: the scope must not give the connection back under it (asyncpg: "another operation is in
    progress" for the next user of that connection), and the task's later reads use their own session."""
    from billing_graphql.db.engine import Database

    if backend == "sqlite":
        pytest.skip("SQLite's driver runs one operation at a time on a connection's own thread")
    db = Database.from_url(database_url, pool_size=1)  # the next read can only have the same connection
    reading, later = asyncio.Event(), []

    async def straggler() -> None:
        async with db.read() as session:
            reading.set()
            await session.execute(text("SELECT pg_sleep(0.3)"))
        async with db.read() as session:  # after the request: a session of its own, closed with it
            later.append(await session.scalar(text("SELECT 2")))

    try:
        async with db.request_scope():
            task = asyncio.create_task(straggler())
            await reading.wait()
        async with db.read() as session:  # the next request's first read
            assert await session.scalar(text("SELECT 1")) == 1
        await asyncio.wait_for(task, timeout=10)
        assert later == [2]
        assert db.engine.pool.checkedout() == 0  # nothing left checked out
    finally:
        await db.dispose()
