"""A counting proxy in front of PostgreSQL: statements and round trips per request, on the wire.

Every client message of the PostgreSQL protocol is read as it passes: a round trip is a ``Sync``
(extended protocol) or a ``Query`` (simple protocol), each of which waits for ``ReadyForQuery``;
a statement is an ``Execute`` or a ``Query`` whose SQL is not transaction control or an empty ping.
The proxy only runs while ``bench/run.py`` probes; timed runs talk to PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import struct
import threading

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "SAVEPOINT", "RELEASE", "SET ", "SHOW ", "DISCARD",
            "DEALLOCATE", "CLOSE", "UNLISTEN", "RESET", "SELECT pg_advisory_unlock_all()")


def _is_statement(sql: str) -> bool:
    text = sql.strip().rstrip(";").strip()
    return bool(text) and not text.upper().startswith(_CONTROL)


class Counter:
    def __init__(self) -> None:
        self.round_trips = 0
        self.statements = 0
        self.sql: list[str] = []

    def reset(self) -> None:
        self.round_trips = self.statements = 0
        self.sql = []


class _Client:
    """Parse one client connection's messages."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.started = False
        self.prepared: dict[bytes, str] = {}
        self.portals: dict[bytes, str] = {}

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                code = struct.unpack("!I", self.buffer[4:8])[0]
                self.buffer = self.buffer[length:]
                if code != 80877103:  # not an SSLRequest: the startup message
                    self.started = True
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body = self.buffer[5:1 + length]
            self.buffer = self.buffer[1 + length:]
            self._message(kind, body)

    def _message(self, kind: bytes, body: bytes) -> None:
        counter = self.counter
        if kind == b"Q":
            counter.round_trips += 1
            sql = body.rstrip(b"\0").decode(errors="replace")
            if _is_statement(sql):
                counter.statements += 1
                counter.sql.append(sql)
        elif kind == b"S":
            counter.round_trips += 1
        elif kind == b"P":
            name, _, rest = body.partition(b"\0")
            self.prepared[name] = rest.partition(b"\0")[0].decode(errors="replace")
        elif kind == b"B":
            portal, _, rest = body.partition(b"\0")
            self.portals[portal] = self.prepared.get(rest.partition(b"\0")[0], "")
        elif kind == b"E":
            sql = self.portals.get(body.partition(b"\0")[0], "")
            if _is_statement(sql):
                counter.statements += 1
                counter.sql.append(sql)


class CountingProxy:
    """Listen on ``port``, forward to ``upstream``; runs its own loop in a thread."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port, self.upstream, self.counter = port, upstream, Counter()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        client = _Client(self.counter)

        async def upstream() -> None:
            while data := await reader.read(65536):
                client.feed(data)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
