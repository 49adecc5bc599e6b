"""The engine and its sessions.

``Database.read()`` opens a plain session; ``Database.write()`` opens one whose transaction
takes SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``), so two writers queue on the busy
timeout instead of failing on a lock upgrade.

Inside ``Database.request_scope()`` (entered once per HTTP request by the app) every ``read()`` of the
request uses one shared read session, one at a time (the DataLoader batches of a page are tasks of
their own and take turns on a lock), instead of a session, a pool checkout and a BEGIN/ROLLBACK each.
A committed ``write()`` ends the shared read transaction, so later reads of the request see it.

On PostgreSQL a read session sends its statements alone (autocommit): under READ COMMITTED a
transaction gives each statement a new snapshot anyway, and BEGIN and ROLLBACK were two of a
compiled page's three round trips. Writes happen only in ``write()``; a server-side cursor
(``session.stream``) needs a transaction and takes ``stream()``.

PostgreSQL connections are not pinged on checkout (``pool_pre_ping`` cost a round trip per session):
they are recycled after ``POOL_RECYCLE_SECONDS``, a connection the server closed is replaced at
checkout without a round trip (asyncpg knows its socket closed), and one that fails during use is
invalidated by SQLAlchemy as a disconnect. On PostgreSQL a service locks the rows it
serializes on (the organization) with ``SELECT ... FOR UPDATE``; see ``lock_organization``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import Context, ContextVar, Token, copy_context
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

SQLITE_BUSY_TIMEOUT_SECONDS = 30
POOL_RECYCLE_SECONDS = 1800
DEFAULT_POOL_SIZE = 20  # Settings.db_pool_size (BILLING_DB_POOL_SIZE)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver glue
        # Let us emit BEGIN ourselves (pysqlite's own transaction handling defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, echo: bool = False, pool_size: int = DEFAULT_POOL_SIZE,
                pool_timeout: float = 30) -> AsyncEngine:
    """At most ``pool_size`` connections, each kept once opened (``max_overflow=0``; connections over a
    pool's size were closed when returned, so a load above it opened and closed one every few requests,
    each new PostgreSQL session parsing and planning its statements again: issue 24). A checkout waits
    up to ``pool_timeout`` seconds for a connection, and takes the connection returned last (``pool_use_lifo``):
    one request at a time is served by one connection, its server process and caches warm, instead of each
    connection a load opened in turn (after a load of 32 at once, the invoices page one request at a time went
    through 16 PostgreSQL sessions in turn: ~0.3 ms slower at the median, and slower still in its slowest 1%)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")  # one StaticPool connection, no size
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            **({} if in_memory else {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout,
                                     "pool_use_lifo": True}),
        )
        _install_sqlite_hooks(engine)
        return engine
    # asyncpg keeps a statement prepared only up to 15 KiB of text by default; the SQL tier's statements
    # (``Database.fetch``) are longer (the invoices page's: 26 KB), and preparing one again for every request
    # halved that page's throughput. 0: every statement, 100 a connection (asyncpg's LRU), as SQLAlchemy's own
    # cache of prepared statements keeps them.
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout,
                                 pool_recycle=POOL_RECYCLE_SECONDS, pool_use_lifo=True,
                                 connect_args={"max_cacheable_statement_size": 0})
    _install_closed_connection_check(engine)
    return engine


def _install_closed_connection_check(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection, _record, _proxy) -> None:
        # asyncpg marks a connection closed when the server ends it (restart, idle timeout,
        # pg_terminate_backend); the pool then discards it and checks out another one.
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this connection")


class _ReadScope:
    """The read session one request shares; one user at a time. Entered (``Database.request_scope``), it is the
    current task's and the tasks' it starts."""

    def __init__(self, factory: async_sessionmaker) -> None:
        self.factory = factory
        self.session: AsyncSession | None = None
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task | None = None
        self.stale = False
        self.ended = False  # the request is over: a task of it still reading takes a session of its own
        self.token: Token | None = None

    async def __aenter__(self) -> None:
        self.token = _READ_SCOPE.set(self)

    async def __aexit__(self, *exc_info: object) -> None:
        _READ_SCOPE.reset(self.token)
        if self.session is None and not self.lock.locked():  # nothing read, nothing reading or waiting
            self.ended = True
            return
        # A task of the request may still be reading (a DataLoader batch nobody awaits any more): its
        # connection goes back to the pool when its read is done, not under it.
        async with self.lock:
            self.ended = True
            await self.release()

    async def release(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()  # detaches what it loaded (still readable), returns the connection


_READ_SCOPE: ContextVar[_ReadScope | None] = ContextVar("billing_read_scope", default=None)


def outside_read_scope() -> Context:
    """A copy of the current context without the request's read scope: for a task that may outlive the
    request (its reads open their own session), still counted as the request's (metrics)."""
    context = copy_context()
    context.run(_READ_SCOPE.set, None)
    return context


async def _driver_connection(session: AsyncSession) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


class Database:
    """The engine with a read and a write session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        write_bind = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        # PostgreSQL reads run without BEGIN/ROLLBACK: under READ COMMITTED each statement takes its
        # own snapshot inside a transaction too, so the two round trips bought nothing.
        read_bind = engine if self.is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read = async_sessionmaker(read_bind, expire_on_commit=False, autoflush=False)
        self._stream = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._write = async_sessionmaker(write_bind, expire_on_commit=False, autoflush=False)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
        return cls(make_engine(url, echo=echo, pool_size=pool_size))

    def request_scope(self) -> _ReadScope:
        """``async with``: share one read session among the reads of the current task and the tasks it starts."""
        return _ReadScope(self._read)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; whatever it began is rolled back on exit (or, in a request
        scope, when the request ends)."""
        scope = _READ_SCOPE.get()
        if scope is None or scope.factory is not self._read or scope.ended:
            async with self._read() as session:
                yield session
            return
        task = asyncio.current_task()
        if scope.owner is task:  # a read nested in a read of the same task
            yield scope.session
            return
        async with scope.lock:
            if scope.ended:  # the request ended while this task waited
                async with self._read() as session:
                    yield session
                return
            scope.owner = task
            try:
                if scope.stale:
                    scope.stale = False
                    await scope.release()
                if scope.session is None:
                    scope.session = self._read()
                yield scope.session
            except BaseException:
                await scope.release()  # never hand a failed transaction to the next reader
                raise
            finally:
                scope.owner = None

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """The driver's own connection (asyncpg's, or aiosqlite's) for a statement its caller compiled (the
        compiled path's SQL tier, ``db.prepared.Prepared``): no session and, unless the request's read
        session is open, no transaction. A lone SELECT reads one snapshot by itself; the session's bookkeeping
        cost more than the statement on a one-row page (0.7 ms against asyncpg's 0.14), and on SQLite BEGIN and
        ROLLBACK were two of its nine trips to the driver's thread. In a request scope it is the request's one
        connection, one user at a time, as ``read()``'s session is: that session's, if it is open."""
        scope = _READ_SCOPE.get()
        if scope is None or scope.factory is not self._read or scope.ended:
            async with self._checked_out() as connection:
                yield connection
            return
        if scope.owner is asyncio.current_task():  # inside a read of the same task: its session's connection
            yield await _driver_connection(scope.session)
            return
        async with scope.lock:
            if scope.stale:
                scope.stale = False
                await scope.release()
            if scope.session is None or scope.ended:
                async with self._checked_out() as connection:
                    yield connection
                return
            try:
                yield await _driver_connection(scope.session)
            except BaseException:
                await scope.release()
                raise

    async def fetch(self, text: str, arguments: list[Any],
                    setup: Callable[[Any], Awaitable[None]] | None = None) -> list[Sequence[Any]]:
        """The rows of one statement compiled for this database's driver (``text`` in its parameter style,
        ``arguments`` bound as SQLAlchemy binds them), read on the driver's own connection (``_driver()``) after
        ``setup(connection)``. The engine's ``before_cursor_execute`` listeners see it, as they see
        SQLAlchemy's statements (the requests' statement counts)."""
        self.engine.sync_engine.dispatch.before_cursor_execute(None, None, text, arguments, None, False)
        async with self._driver() as connection:
            if setup is not None:
                await setup(connection)
            if self.is_sqlite:
                return await connection.execute_fetchall(text, arguments)
            return await connection.fetch(text, *arguments)

    @asynccontextmanager
    async def _checked_out(self) -> AsyncIterator[Any]:
        """A connection of the pool, as the driver's, returned when done: the pool's reset sends nothing on
        PostgreSQL, where no transaction began. A cancelled statement is cancelled on the server by asyncpg,
        and the connection serves the next one; one the server closed is replaced at the next checkout."""
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        finally:
            await greenlet_spawn(pooled.close)

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[AsyncSession]:
        """A session for ``session.stream(...)``: PostgreSQL's server-side cursor lives in a transaction
        (rolled back on exit), which ``read()``'s autocommit sessions do not open."""
        async with self._stream() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        A request holds one connection at a time: an idle read session of its scope is given back
        first (the next read takes a new snapshot anyway). Holding it while waiting for the write's
        connection would let as many requests as the pool has connections, all stamping a key's
        last use at once, wait on each other until the pool's timeout."""
        scope = _READ_SCOPE.get()
        if scope is not None and scope.session is not None and not scope.lock.locked():
            async with scope.lock:
                await scope.release()
        async with self._write() as session, session.begin():
            yield session
        scope = _READ_SCOPE.get()
        if scope is not None:
            scope.stale = True  # the next read of this request starts a new snapshot

    async def dispose(self) -> None:
        await self.engine.dispose()


async def lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Serialize money-moving work per organization.

    PostgreSQL: a row lock on the organization. SQLite: the write session's BEGIN IMMEDIATE
    already holds the database's single write lock, and SQLAlchemy would drop FOR UPDATE.
    """
    from billing_graphql.db.models import Organization

    if session.bind.dialect.name == "sqlite":
        return
    await session.execute(
        select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )
