"""Local HTTP servers for the contract suite, each on a free loopback port in its own thread:

- ``LocalStripe``: localstripe (the stateful fake Stripe server from PyPI), in process;
- ``IdempotentProxy``: Stripe's ``Idempotency-Key`` replay in front of it (localstripe ignores the
  header): the first answer to a key is kept and returned for every later request with that key,
  as Stripe documents; ``drop_next`` makes the proxy forward one request, keep the answer and
  then hang up without answering (a timeout after the processor accepted); ``drop_params`` names
  form parameters removed from a request before it is forwarded (for the journeys: localstripe
  refuses ``setup_future_usage`` on PaymentIntents, which real Stripe accepts).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import ClientSession, web


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadedServer:
    """An aiohttp application served from a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.sock = loopback_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> ThreadedServer:
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()

    @staticmethod
    async def _cancel_the_rest() -> None:
        """Tasks the server left behind (localstripe's webhook sends) end with it."""
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def call(self, coroutine: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.call(self._cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
        self.sock.close()


def running_localstripe():
    """localstripe for a fixture: started, yielded, stopped."""
    server = start_localstripe()
    try:
        yield server
    finally:
        server.stop()


def start_localstripe() -> ThreadedServer:
    """localstripe's own aiohttp application, its store kept in memory only (it would otherwise
    pickle itself to /tmp/localstripe.pickle after every write)."""
    from localstripe import resources, server

    resources.store.clear()
    resources.Store.dump_to_disk = lambda self: None
    # localstripe's module-level application runs in one event loop once: serve a fresh copy of it.
    app = web.Application(middlewares=list(server.app.middlewares))
    for route in server.app.router.routes():
        app.router.add_route(route.method, route.resource.canonical, route.handler)
    app.on_response_prepare.extend(server.app.on_response_prepare)  # its CORS headers, for Stripe.js in a browser
    return ThreadedServer(app).start()


class IdempotentProxy:
    """Forwards to ``upstream``, replaying the first answer per ``Idempotency-Key``; counts the
    requests that reached the upstream per (method, path)."""

    def __init__(self, upstream: str, *, drop_params: tuple[str, ...] = ()) -> None:
        self.upstream = upstream
        self.drop_params = drop_params
        self.answers: dict[str, tuple[int, bytes, str]] = {}
        self.forwarded: list[tuple[str, str, str | None]] = []
        self.drop_next = False
        self.hook: Callable[[web.Request], Awaitable[web.Response | None]] | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = ThreadedServer(app)

    def start(self) -> IdempotentProxy:
        self.server.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is not None and key in self.answers:
            status, body, content_type = self.answers[key]
            return web.Response(status=status, body=body, content_type=content_type)
        body = await request.read()
        if self.drop_params and request.content_type == "application/x-www-form-urlencoded":
            form = parse_qsl(body.decode(), keep_blank_values=True)
            body = urlencode([(name, value) for name, value in form if name not in self.drop_params]).encode()
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() not in ("host", "content-length", "transfer-encoding")}
        async with ClientSession() as session:
            async with session.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                       data=body, headers=headers) as answer:
                content = await answer.read()
                status, content_type = answer.status, answer.content_type
        self.forwarded.append((request.method, request.path, key))
        if key is not None and status < 500:
            self.answers[key] = (status, content, content_type)
        if self.drop_next:
            self.drop_next = False
            assert request.transport is not None
            request.transport.close()  # accepted upstream, never answered here
            raise asyncio.CancelledError
        return web.Response(status=status, body=content, content_type=content_type)

    def stop(self) -> None:
        self.server.stop()
