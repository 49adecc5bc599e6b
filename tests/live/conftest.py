"""Live subscriptions: a real uvicorn server (WebSockets need one) on the test's event loop and database,
and a ``graphql-transport-ws`` client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import GraphQLClient

PROTOCOL = "graphql-transport-ws"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, port: int, http: httpx.AsyncClient, db, app) -> None:
        self.app = app
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        self.api = GraphQLClient(http, db)


@pytest.fixture
def live_settings(database_url, request):
    """The live server's settings; a test overrides some with ``indirect`` parametrization."""
    from tests.helpers import test_settings

    return test_settings(database_url, **getattr(request, "param", {}))


@pytest.fixture
async def live_server(db, live_settings, graphql_schema) -> AsyncIterator[Server]:
    from billing_graphql.app import create_app

    # the shared schema is built with trusted documents off: another mode builds its own
    schema = graphql_schema if live_settings.trusted_documents == "off" else None
    app = create_app(live_settings, db=db, schema=schema, freeze_gc=False, workers=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="on",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started
    try:
        # httpx's 5 s default: one mutation on SQLite took longer once on a loaded machine (the full suite at -n 2).
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Server(port, http, db, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


class LiveClient:
    """One socket speaking graphql-transport-ws."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str, token: str | None = None, *, init: bool = True,
                   payload: dict | None = None) -> LiveClient:
        connection = await connect(url, subprotocols=[PROTOCOL], open_timeout=10)
        client = cls(connection)
        if init:
            await client.send({"type": "connection_init",
                               "payload": payload if payload is not None else {"Authorization": f"Bearer {token}"}})
        return client

    async def send(self, message: dict) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next message other than a ping (answered)."""
        while True:
            message = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return message

    async def acked(self) -> LiveClient:
        message = await self.receive()
        assert message == {"type": "connection_ack"}, message
        return self

    async def subscribe(self, operation_id: str, query: str, variables: dict | None = None, **extra: Any) -> None:
        payload: dict[str, Any] = {"query": query, "variables": variables or {}, **extra}
        if query is None:
            payload.pop("query")
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})

    async def quiet(self, seconds: float = 0.6) -> None:
        """Nothing arrives for ``seconds``."""
        try:
            message = await self.receive(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")

    async def closed_with(self, timeout: float = 10) -> int:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await self.receive(timeout=timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else closed.code  # type: ignore[union-attr]

    async def close(self) -> None:
        await self.connection.close()


@pytest.fixture
async def live_clients() -> AsyncIterator[list[LiveClient]]:
    """Clients a test opened (closed at its end)."""
    clients: list[LiveClient] = []
    yield clients
    for client in clients:
        await client.close()
