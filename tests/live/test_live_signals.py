"""The announcement costs nothing where there is nothing to announce: a writing transaction that wrote no
outbox event and changed no usage counter sends no ``pg_notify`` (PostgreSQL) and calls no local listener
(SQLite); one that did sends one, inside the transaction, before its COMMIT."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import event, text, update

from billing_graphql.db.models import Organization
from billing_graphql.domain.usage import EventInput
from billing_graphql.services.live.signals import listen_locally
from billing_graphql.services.platform.audit import emit_event
from billing_graphql.services.usage.ingest import record_usage
from tests.helpers import make_keys


@contextmanager
def announcements(db, database_url):
    """What was announced inside the block, in order, with "COMMIT" marks on PostgreSQL."""
    seen: list[str] = []
    if db.is_sqlite:
        stop = listen_locally(database_url, lambda items: seen.append(",".join(items)))
        try:
            yield seen
        finally:
            stop()
        return

    def statement(conn, cursor, sql, parameters, context, executemany):
        if sql.startswith("SELECT pg_notify("):
            seen.append(parameters[1] if isinstance(parameters, tuple) else str(parameters))

    def committed(conn):
        seen.append("COMMIT")

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", committed)


def notes(seen: list[str]) -> list[str]:
    return [item for item in seen if item != "COMMIT"]


async def test_a_transaction_with_nothing_to_announce_sends_nothing(db, database_url):
    keys = await make_keys(db)
    now = datetime.now(UTC)
    batch = [EventInput("messages", 1, now, "k-1")]
    await record_usage(db, organization_id=keys.organization_id, events=batch, now=now)
    with announcements(db, database_url) as seen:
        async with db.write() as session:  # a write of no interest to live subscribers
            await session.execute(update(Organization).where(Organization.id == keys.organization_id)
                                  .values(name="Acme renamed"))
        async with db.write() as session:
            await session.execute(text("SELECT 1"))
        # recordUsage whose every event is a duplicate: no counter changed
        assert (await record_usage(db, organization_id=keys.organization_id, events=batch, now=now)).accepted == 0
    assert notes(seen) == []


async def test_an_event_or_a_usage_change_is_announced_once_inside_its_transaction(db, database_url):
    keys = await make_keys(db)
    now = datetime.now(UTC)
    with announcements(db, database_url) as seen:
        async with db.write() as session:
            emit_event(session, event_type="organization.updated", organization_id=keys.organization_id,
                       payload={"object": {}}, now=now)
        await record_usage(db, organization_id=keys.organization_id,
                           events=[EventInput("messages", 2, now, "k-2")], now=now)
    found = notes(seen)
    assert len(found) == 2
    assert found[0].startswith(f"e:{keys.organization_id}:") and found[1] == f"u:{keys.organization_id}"
    if not db.is_sqlite:  # each pg_notify went out in its transaction, before that transaction's COMMIT
        assert [item if item == "COMMIT" else "notify" for item in seen][-4:] == ["notify", "COMMIT", "notify",
                                                                                   "COMMIT"]


async def test_a_rolled_back_transaction_announces_nothing(db, database_url):
    keys = await make_keys(db)

    class Rollback(Exception):
        pass

    with announcements(db, database_url) as seen:
        try:
            async with db.write() as session:
                emit_event(session, event_type="organization.updated", organization_id=keys.organization_id,
                           payload={"object": {}}, now=datetime.now(UTC))
                await session.flush()
                raise Rollback
        except Rollback:
            pass
    assert seen == []  # PostgreSQL: not even a pg_notify sent (it goes out just before COMMIT)
