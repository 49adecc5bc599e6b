"""The verified-credential cache (issue 24): a key checked once is not read again for
``VERIFIED_SECONDS``, and once ``revoke_api_key`` returns no cache anywhere still takes it.
Two ``Database`` objects over one database stand for two processes: each has its own cache."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from billing_graphql.db.engine import Database
from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.api_keys import create_api_key, revoke_api_key
from billing_graphql.services.platform.auth import (
    VERIFIED_SECONDS,
    AuthenticationFailed,
    _verified_for,
    hash_api_key,
    authenticate,
    issue_session_token,
)
from tests.helpers import T0, count_statements

SECRET = "s" * 32


async def _check(db: Database, key: str):
    return await authenticate(db, f"Bearer {key}", jwt_secret=SECRET, now=T0)


async def test_a_verified_key_is_not_read_again(db, keys):
    first = await _check(db, keys.owner)
    with count_statements(db, cold_credentials=False) as counter:
        again = await _check(db, keys.owner)
    assert counter.count == 0
    assert again == first
    assert again.role is Role.OWNER and again.organization_id == keys.organization_id


async def test_a_verified_key_is_read_again_after_its_time(db, keys):
    await _check(db, keys.owner)
    time.sleep(VERIFIED_SECONDS + 0.05)
    with count_statements(db, cold_credentials=False) as counter:
        await _check(db, keys.owner)
    assert counter.count == 1


async def test_last_use_is_still_written_once_a_minute(db, keys):
    await authenticate(db, f"Bearer {keys.owner}", jwt_secret=SECRET, now=T0 + timedelta(minutes=5))
    with count_statements(db, cold_credentials=False) as counter:
        await authenticate(db, f"Bearer {keys.owner}", jwt_secret=SECRET, now=T0 + timedelta(minutes=5, seconds=30))
    assert counter.count == 0
    with count_statements(db, cold_credentials=False) as counter:
        await authenticate(db, f"Bearer {keys.owner}", jwt_secret=SECRET, now=T0 + timedelta(minutes=6, seconds=1))
    assert [statement.split()[0].upper() for statement in counter.statements] == ["UPDATE"]


async def test_no_process_takes_a_key_once_its_revocation_returned(db, database_url, keys):
    key, plain = await create_api_key(db, None, role=Role.ADMIN, organization_id=keys.organization_id,
                                      label="two processes", now=T0)
    other_process = Database.from_url(database_url)
    try:
        assert (await _check(other_process, plain)).role is Role.ADMIN  # now in the other's cache
        assert (await _check(db, plain)).role is Role.ADMIN
        started = time.monotonic()
        await revoke_api_key(db, None, key_id=key.id, now=T0)
        assert time.monotonic() - started >= VERIFIED_SECONDS
        for database in (db, other_process):
            with pytest.raises(AuthenticationFailed, match="revoked"):
                await _check(database, plain)
    finally:
        await other_process.engine.dispose()


async def test_an_unknown_key_is_never_cached(db, keys):
    with pytest.raises(AuthenticationFailed):
        await _check(db, "bgk_unknown")
    with count_statements(db, cold_credentials=False) as counter, pytest.raises(AuthenticationFailed):
        await _check(db, "bgk_unknown")
    assert counter.count == 1


async def test_a_session_token_reads_its_organization_once(db, keys):
    token = issue_session_token(SECRET, subject="u1", organization_external_id="acme", role=Role.MEMBER,
                                expires_at=T0 + timedelta(hours=1))
    first = await _check(db, token)
    with count_statements(db, cold_credentials=False) as counter:
        assert await _check(db, token) == first
    assert counter.count == 0
    assert first.organization_id == keys.organization_id


async def test_requests_that_miss_a_key_at_once_share_one_read_and_one_stamp(db, keys):
    with count_statements(db) as counter:
        actors = await asyncio.gather(*(authenticate(db, f"Bearer {keys.owner}", jwt_secret=SECRET,
                                                     now=T0 + timedelta(minutes=5)) for _ in range(20)))
    assert len(set(actors)) == 1 and actors[0].role is Role.OWNER
    assert [statement.split()[0].upper() for statement in counter.statements] == ["SELECT", "UPDATE"]


async def test_a_key_is_trusted_from_when_its_read_began(db, keys):
    """A read that began before a revocation committed must expire by the time ``revoke_api_key`` returns
    (it waits ``VERIFIED_SECONDS`` after its commit), however long the read took: here 0.3 s."""

    def slow(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("SELECT") and "api_keys" in statement:
            time.sleep(0.3)

    event.listen(db.engine.sync_engine, "before_cursor_execute", slow)
    try:
        before = time.monotonic()
        await _check(db, keys.owner)
        assert time.monotonic() - before >= 0.3
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", slow)
    entry = _verified_for(db).keys[hash_api_key(keys.owner)]
    assert before + VERIFIED_SECONDS <= entry.trusted_until < before + VERIFIED_SECONDS + 0.2


async def test_a_request_that_goes_away_does_not_take_the_shared_read_with_it(db, keys):
    """The first request to miss a key starts the read; when that request is cancelled and its read scope
    closes, the requests waiting on the same read still get the key. (PostgreSQL: a table lock held
    elsewhere keeps the read waiting without blocking the event loop.)"""
    if db.is_sqlite:
        pytest.skip("SQLite's readers do not wait on a writer's lock")

    async def in_a_request():
        async with db.request_scope():
            return await _check(db, keys.owner)

    other = Database.from_url(db.engine.url.render_as_string(hide_password=False))
    try:
        async with other.write() as session:
            await session.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))
            first = asyncio.ensure_future(in_a_request())
            await asyncio.sleep(0.3)  # its read waits on the lock
            others = [asyncio.ensure_future(in_a_request()) for _ in range(3)]
            await asyncio.sleep(0.05)
            first.cancel()
            await asyncio.sleep(0.05)
        actors = await asyncio.gather(*others)
    finally:
        await other.dispose()
    assert {actor.role for actor in actors} == {Role.OWNER}
