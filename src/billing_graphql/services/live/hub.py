"""One process's fan-out of committed changes to its live subscribers.

``Hub.start`` opens this process's one listening channel: on PostgreSQL a dedicated asyncpg
connection running ``LISTEN billing_live`` (``asyncpg``'s ``add_listener``: the connection's
reader wakes on a notification, nothing polls while nothing happens); on SQLite the in-process
announcements of ``services.live.signals``. Each announcement names ids only; the hub's one pump task
takes them in arrival (= commit) order, loads the announced outbox rows that some subscriber of this
process wants with one query, and hands each subscriber what belongs to its organization.

A subscriber's queue is bounded: past ``MAX_QUEUE`` undelivered items its socket is closed (4408)
rather than holding memory for a client that does not read. When the LISTEN connection is lost,
every socket of the process is closed with 1012 (service restart): clients reconnect, and
``billingEvents(after:)`` replays what they missed from the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import make_url

from billing_graphql.db.engine import Database
from billing_graphql.db.models import OutboxEvent
from billing_graphql.services.live.signals import CHANNEL, listen_locally, parse

log = logging.getLogger("billing_graphql.live")

MAX_QUEUE = 1000
REPLAY_WINDOW = timedelta(hours=24)
MAX_REPLAY = 10_000
SLOW_CLIENT = 4408
SERVICE_RESTART = 1012
RECONNECT_DELAYS = (0.5, 1, 2, 5)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An outbox event as a live subscriber receives it (shared by all of a process's subscribers)."""

    id: uuid.UUID
    organization_id: uuid.UUID | None
    type: str
    created_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxEvent) -> LiveEvent:
        return cls(id=row.id, organization_id=row.organization_id, type=row.event_type, created_at=row.created_at,
                   data=row.payload)


async def next_in(queue: deque, wakeup: asyncio.Event, ended: Callable[[], bool]) -> Any:
    """The next item of ``queue`` (waiting on ``wakeup`` for one); None once ``ended()`` and empty."""
    while not queue:
        if ended():
            return None
        wakeup.clear()
        await wakeup.wait()
    return queue.popleft()


class Subscriber:
    """One subscription's inbox: the events of its organizations (``wants_events``), in order, and the
    set of its organizations whose usage changed since it last looked (``wants_usage``: a set, so a
    burst of recordUsage calls waits as one mark per organization, never as a growing queue)."""

    __slots__ = ("organizations", "wants_events", "wants_usage", "queue", "dirty", "wakeup", "on_close", "closed")

    def __init__(self, organizations: frozenset[uuid.UUID], *, events: bool, usage: bool,
                 on_close: Callable[[int, str], None]) -> None:
        self.organizations = organizations
        self.wants_events = events
        self.wants_usage = usage
        self.queue: deque[LiveEvent] = deque()
        self.dirty: set[uuid.UUID] = set()
        self.wakeup = asyncio.Event()
        self.on_close = on_close
        self.closed = False

    def push(self, event: LiveEvent) -> None:
        if self.closed:
            return
        self.queue.append(event)
        if len(self.queue) > MAX_QUEUE:
            self.close(SLOW_CLIENT, f"Slow client: more than {MAX_QUEUE} messages waiting")
            return
        self.wakeup.set()

    def usage_changed(self, organization_id: uuid.UUID) -> None:
        if not self.closed:
            self.dirty.add(organization_id)
            self.wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.queue.clear()
            self.wakeup.set()
            self.on_close(code, reason)

    async def next_event(self) -> LiveEvent | None:
        """The next event (waiting for one); None once closed."""
        return await next_in(self.queue, self.wakeup, lambda: self.closed)

    async def next_usage(self) -> set[uuid.UUID] | None:
        """The organizations whose usage changed (waiting for one); None once closed."""
        while not self.dirty:
            if self.closed:
                return None
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.take_usage()

    def take_usage(self) -> set[uuid.UUID]:
        dirty, self.dirty = self.dirty, set()
        return dirty


class Hub:
    def __init__(self, db: Database, *, database_url: str) -> None:
        self.db = db
        self.database_url = database_url
        self.subscribers: dict[uuid.UUID, set[Subscriber]] = {}
        self.inbox: asyncio.Queue[list[str]] = asyncio.Queue()
        self.connection: Any = None
        self.pump: asyncio.Task | None = None
        self.reconnecting: asyncio.Task | None = None
        self.stop_local: Callable[[], None] | None = None
        self.stopped = False

    # -- the channel -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.db.is_sqlite:
            self.stop_local = listen_locally(self.database_url, self._received)
        else:
            await self._listen()
        self.pump = asyncio.create_task(self._run(), name="live-hub-pump")

    async def stop(self) -> None:
        self.stopped = True
        if self.stop_local is not None:
            self.stop_local()
        for task in (self.pump, self.reconnecting):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(task for task in (self.pump, self.reconnecting) if task), return_exceptions=True)
        if self.connection is not None:
            connection, self.connection = self.connection, None
            try:
                await connection.close(timeout=2)
            except Exception:  # noqa: BLE001 - already gone
                connection.terminate()

    async def _listen(self) -> None:
        import asyncpg

        dsn = make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        await connection.add_listener(CHANNEL, self._notified)
        connection.add_termination_listener(self._terminated)
        self.connection = connection

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._received(parse(payload))

    def _received(self, items: list[str]) -> None:
        self.inbox.put_nowait(items)

    def _terminated(self, _connection: Any) -> None:
        if self.stopped:
            return
        log.warning("live: the LISTEN connection was lost; closing this process's live sockets and reconnecting")
        self.connection = None
        self.lost()
        self.reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    def lost(self) -> None:
        """Announcements may have been missed: close every subscriber (clients resume with ``after``)."""
        for subscribers in list(self.subscribers.values()):
            for subscriber in list(subscribers):
                subscriber.close(SERVICE_RESTART, "Live channel lost: reconnect (billingEvents(after:) replays)")

    async def _reconnect(self) -> None:
        attempt = 0
        while not self.stopped:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            try:
                await self._listen()
                log.info("live: LISTEN connection restored")
                return
            except Exception as exc:  # noqa: BLE001 - keep trying
                attempt += 1
                log.warning("live: LISTEN reconnect failed (%s)", type(exc).__name__)

    # -- subscribers -------------------------------------------------------------------------
    def add(self, subscriber: Subscriber) -> Subscriber:
        for organization_id in subscriber.organizations:
            self.subscribers.setdefault(organization_id, set()).add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        for organization_id in subscriber.organizations:
            subscribers = self.subscribers.get(organization_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self.subscribers[organization_id]

    # -- the pump ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            items = await self.inbox.get()
            while not self.inbox.empty():  # whatever else arrived meanwhile, in order
                items.extend(self.inbox.get_nowait())
            try:
                await self._dispatch(items)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed load loses this batch for this process: say so, resync clients
                log.exception("live: dispatching %d announcements failed", len(items))
                self.lost()

    async def _dispatch(self, items: list[str]) -> None:
        wanted: list[uuid.UUID] = []
        for item in items:
            kind, _, rest = item.partition(":")
            if kind == "u":
                organization_id = _uuid(rest)
                for subscriber in list(self.subscribers.get(organization_id, ())) if organization_id else ():
                    if subscriber.wants_usage:
                        subscriber.usage_changed(organization_id)
            elif kind == "e":
                organization, _, event = rest.partition(":")
                organization_id, event_id = _uuid(organization), _uuid(event)
                if event_id is not None and organization_id is not None and any(
                        subscriber.wants_events for subscriber in self.subscribers.get(organization_id, ())):
                    wanted.append(event_id)
        if not wanted:
            return
        rows = await load_events(self.db, wanted)
        for row in rows:
            event = LiveEvent.of(row)
            for subscriber in list(self.subscribers.get(event.organization_id, ())):
                if subscriber.wants_events:
                    subscriber.push(event)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def load_events(db: Database, ids: list[uuid.UUID]) -> list[OutboxEvent]:
    """The outbox rows of ``ids``, in the order of ``ids`` (commit order); ids not found are skipped."""
    order = {event_id: index for index, event_id in enumerate(ids)}
    rows: list[OutboxEvent] = []
    for start in range(0, len(ids), 500):
        async with db.read() as session:
            rows.extend((await session.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_(ids[start:start + 500])))).all())
    return sorted(rows, key=lambda row: order[row.id])


class ReplayRefused(Exception):
    """``after`` names no event of the organization, or one older than the replay window."""


async def replay(db: Database, organization_id: uuid.UUID, after: uuid.UUID, now: datetime) -> list[LiveEvent]:
    """The organization's events after ``after`` (at most ``REPLAY_WINDOW`` back from ``now``), oldest
    first. Events of the same instant as ``after`` (one transaction) are all sent again except ``after``
    itself: a client deduplicates by id."""
    async with db.read() as session:
        mark = (await session.execute(
            select(OutboxEvent.created_at).where(OutboxEvent.id == after,
                                                 OutboxEvent.organization_id == organization_id))).first()
        if mark is None:
            raise ReplayRefused("`after` names no event of this organization.")
        (since,) = mark
        if since < now - REPLAY_WINDOW:
            raise ReplayRefused("`after` is more than 24 hours old: read the current state instead.")
        rows = (await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.organization_id == organization_id,
                   or_(OutboxEvent.created_at > since, and_(OutboxEvent.created_at == since, OutboxEvent.id != after)))
            .order_by(OutboxEvent.created_at, OutboxEvent.id).limit(MAX_REPLAY))).all()
    return [LiveEvent.of(row) for row in rows]


class Guard:
    """While live sockets are open, re-checks each one's credential and grants every ``interval``
    seconds (a revoked key or lost role closes within the interval); idle without sockets."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.checks: dict[object, Callable[[dict], Awaitable[None]]] = {}
        self.task: asyncio.Task | None = None

    def watch(self, owner: object, check: Callable[[dict], Awaitable[None]]) -> None:
        """``check(known)``: ``known`` is shared by one round's checks (one look-up per credential)."""
        self.checks[owner] = check
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="live-guard")

    def forget(self, owner: object) -> None:
        self.checks.pop(owner, None)

    async def _run(self) -> None:
        while self.checks:
            await asyncio.sleep(self.interval)
            known: dict = {}
            for check in list(self.checks.values()):
                try:
                    await check(known)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one socket's failure is its own
                    log.exception("live: a credential check failed")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
