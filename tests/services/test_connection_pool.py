"""The pool keeps every connection it opens, up to its size (issue 24).

With ``pool_size=10, max_overflow=20`` a load of more than 10 requests at once opened connections over
the ten and closed each when it was returned: at 32 connections the bench saw a new PostgreSQL session
every four requests, each parsing and planning the page's statement again (211 sessions in 5 s). Now
the pool opens at most ``BILLING_DB_POOL_SIZE`` connections and keeps each it opened."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from litestar.testing import AsyncTestClient
from sqlalchemy import text

from billing_graphql.app import create_app

from billing_graphql.db.engine import Database

WIDTH = 12  # more at once than the pool's former size (10), fewer than its new one


async def _connections_at_once(db: Database, count: int) -> set[object]:
    """Hold ``count`` connections at once; the identity of each (PostgreSQL: its backend's pid)."""
    held = asyncio.Event()
    ready: list[object] = []

    async def hold() -> None:
        async with db.engine.connect() as connection:
            if db.is_sqlite:
                ready.append(id((await connection.get_raw_connection()).driver_connection))
            else:
                ready.append((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            if len(ready) == count:
                held.set()
            await held.wait()

    await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(count))), timeout=30)
    return set(ready)


async def test_connections_opened_under_load_are_kept_for_the_next_load(database_url: str):
    db = Database.from_url(database_url, pool_size=WIDTH)
    try:
        first = await _connections_at_once(db, WIDTH)
        second = await _connections_at_once(db, WIDTH)
        assert len(first) == WIDTH
        assert second == first  # the same connections: none closed on return, none opened anew
        assert db.engine.pool.checkedin() == WIDTH
    finally:
        await db.dispose()


async def test_no_more_connections_than_the_pool_size(database_url: str):
    db = Database.from_url(database_url, pool_size=3)
    try:
        async with db.engine.connect(), db.engine.connect(), db.engine.connect():
            fourth = asyncio.create_task(_connections_at_once(db, 1))
            await asyncio.sleep(0.2)
            assert not fourth.done()  # waits for one of the three, opens no fourth
        assert len(await asyncio.wait_for(fourth, timeout=10)) == 1
        assert db.engine.pool.checkedin() <= 3
    finally:
        await db.dispose()


async def test_the_server_sizes_its_pool_from_settings(settings):
    app = create_app(replace(settings, db_pool_size=7), freeze_gc=False)
    async with AsyncTestClient(app):
        pool = app.state.db.engine.pool
        assert (pool.size(), pool._max_overflow) == (7, 0)


async def test_one_request_at_a_time_is_served_by_the_connection_returned_last(database_url: str):
    """After a load has opened several connections, requests one at a time take the connection returned last
    (LIFO), not each of the load's connections in turn: one warm PostgreSQL session instead of a round of them."""
    db = Database.from_url(database_url, pool_size=WIDTH)
    try:
        opened = await _connections_at_once(db, 4)
        one_at_a_time = [await _connections_at_once(db, 1) for _ in range(8)]
        assert len(opened) == 4
        assert len(set().union(*one_at_a_time)) == 1
    finally:
        await db.dispose()
