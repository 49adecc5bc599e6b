"""The app's one outermost middleware, for every HTTP request, in this order: its id (``http.request_ids``: sent
back in ``X-Request-ID``, and in the log of what fails after the answer began), its metrics (``http.metrics``: a
GraphQL request's record, duration and statements; the rate limiter's 429s counted) and the one read session its
reads share (``Database.request_scope``).

One layer with one wrapper of ``send``: as three middlewares, each a closure around the next with its own wrapper,
they were a fifth of ``{ viewer { role } }``'s time in process.
"""

from __future__ import annotations

import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from billing_graphql import metrics
from billing_graphql.http.metrics import finish_record, json_log_enabled
from billing_graphql.http.request_ids import HEADER, enter_request, leave_request, log_failure
from billing_graphql.settings import Settings


def request_middleware(settings: Settings):
    """The middleware factory for ``Litestar(middleware=[...])``; put it first (outermost): its metrics see the rate
    limiter's 429s, and every failure is logged with the request's id."""
    json_log = json_log_enabled(settings)
    metrics.install_statement_counter()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id, token = enter_request(scope)
            status = 500

            async def send_answer(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode())]
                await send(message)

            # A GraphQL request is recorded (its operation, outcome, duration, statements); any other only counted
            # when the rate limit refused it.
            record = metrics.RequestRecord() if scope["path"] == "/graphql" and scope["method"] == "POST" else None
            record_token = metrics.CURRENT_REQUEST.set(record) if record is not None else None
            started = time.perf_counter()
            try:
                async with scope["app"].state.db.request_scope():
                    await app(scope, receive, send_answer)
            except Exception as error:  # Litestar's rate limiter raises its 429; the handler outside sends it
                status = getattr(error, "status_code", 500)
                log_failure(error, request_id, scope)
                raise
            finally:
                if status == 429:
                    metrics.record_rate_limited()
                if record is not None:
                    metrics.CURRENT_REQUEST.reset(record_token)
                    finish_record(record, status, time.perf_counter() - started, json_log)
                leave_request(token)

        return middleware

    return factory
