"""The controller's middleware answering a document with a plan (``http.graphql_controller.compiled_answers``),
driven over raw ASGI messages: a body in pieces, a body over the limit, a client gone before the body's end, a plan
handing the request back, a body that is not JSON. Each request either is answered on the plan or goes on to the
handler, which answers as the generic path does; never both, never neither."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from billing_graphql.app import create_app
from tests.api.test_queries_dir import QUERIES
from tests.helpers import test_settings

VIEWER = next(QUERIES.rglob("Viewer.graphql")).read_text()


def _app(db, database_url, **overrides):
    return create_app(test_settings(database_url, **overrides), db=db, freeze_gc=False)


async def _call(app, messages: list[dict], headers: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
    """One POST /graphql: the request's ``messages`` in turn, then a receive that waits (as a server's does)."""
    pending = list(messages)
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("the body was read past its end")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80), "state": {}}
    await asyncio.wait_for(app(scope, receive, send), 30)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], start["headers"], body


def _headers(token: str, body: bytes | None = None, content_type: bytes = b"application/json") -> list:
    headers = [(b"content-type", content_type), (b"authorization", f"Bearer {token}".encode())]
    return headers if body is None else [*headers, (b"content-length", str(len(body)).encode())]


def _pieces(body: bytes, size: int) -> list[dict]:
    chunks = [body[start:start + size] for start in range(0, len(body), size)]
    return [{"type": "http.request", "body": chunk, "more_body": number < len(chunks) - 1}
            for number, chunk in enumerate(chunks)]


async def test_a_body_in_pieces_is_answered_on_its_plan_as_a_whole_one(db, database_url, keys):
    app = _app(db, database_url)
    compiled = app.state.compiled
    body = orjson.dumps({"query": VIEWER})
    whole = await _call(app, [{"type": "http.request", "body": body}], _headers(keys.owner, body))
    answered = compiled.answered
    pieces = await _call(app, _pieces(body, 7), _headers(keys.owner))  # no content-length: streamed
    assert compiled.answered == answered + 1
    assert pieces[0] == whole[0] == 200
    assert pieces[2] == whole[2]
    assert orjson.loads(whole[2])["data"]["viewer"]["role"] == "OWNER"


async def test_a_planned_answer_has_the_handlers_headers_and_the_request_id(db, database_url, keys):
    app = _app(db, database_url)
    body = orjson.dumps({"query": VIEWER})
    status, headers, answer = await _call(app, [{"type": "http.request", "body": body}],
                                          [*_headers(keys.owner, body), (b"x-request-id", b"req-42")])
    assert status == 200
    assert headers == [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode()),
                       (b"x-request-id", b"req-42")]


@pytest.mark.parametrize("announced", [True, False])
async def test_a_body_over_the_limit_is_413_for_a_planned_document(db, database_url, keys, announced):
    app = _app(db, database_url, max_body_bytes=1024)
    base = len(orjson.dumps({"query": VIEWER, "variables": {"pad": ""}}))
    body = orjson.dumps({"query": VIEWER, "variables": {"pad": "x" * (1300 - base)}})  # its last piece ends it
    answered = app.state.compiled.answered
    status, _, answer = await _call(app, _pieces(body, 512), _headers(keys.owner, body if announced else None))
    assert status == 413
    assert orjson.loads(answer)["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert app.state.compiled.answered == answered


async def test_a_client_gone_before_the_bodys_end_is_not_answered_on_the_plan(db, database_url, keys):
    app = _app(db, database_url)
    body = orjson.dumps({"query": VIEWER})
    answered = app.state.compiled.answered
    status, _, _ = await _call(app, [{"type": "http.request", "body": body[:10], "more_body": True},
                                     {"type": "http.disconnect"}], _headers(keys.owner))
    assert status >= 400  # the handler meets the disconnect, as it did before the middleware
    assert app.state.compiled.answered == answered


@pytest.mark.parametrize("request_body", [
    {"query": VIEWER, "variables": []},  # the plan hands it back: variables are not an object
    {"query": VIEWER, "operationName": 5},  # no plan: the handler refuses it
    "not json",
])
async def test_what_the_plan_does_not_answer_the_generic_path_answers_once(db, database_url, keys, request_body):
    compiled_app, generic_app = _app(db, database_url), _app(db, database_url, compiled_documents=False)
    body = request_body.encode() if isinstance(request_body, str) else orjson.dumps(request_body)
    message, headers = [{"type": "http.request", "body": body}], [*_headers(keys.owner, body), (b"x-request-id", b"r")]
    answered = compiled_app.state.compiled.answered
    expected = await _call(generic_app, message, headers)
    assert expected[0] == 400
    assert await _call(compiled_app, message, headers) == expected
    assert compiled_app.state.compiled.answered == answered


async def test_a_body_that_is_not_json_typed_goes_to_the_handler(db, database_url, keys):
    app = _app(db, database_url)
    body = orjson.dumps({"query": VIEWER})
    answered = app.state.compiled.answered
    status, _, answer = await _call(app, [{"type": "http.request", "body": body}],
                                    _headers(keys.owner, body, content_type=b"text/plain"))
    assert app.state.compiled.answered == answered
    generic = await _call(_app(db, database_url, compiled_documents=False), [{"type": "http.request", "body": body}],
                          _headers(keys.owner, body, content_type=b"text/plain"))
    assert (status, answer) == (generic[0], generic[2])
