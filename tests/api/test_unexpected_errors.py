"""Issue 19 item 8: an unexpected error on any route is logged once, with the request id, and answered
with a masked 500 that carries no trace (the id is in the ``X-Request-ID`` header to quote)."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx
import pytest

from billing_graphql.app import create_app
from billing_graphql.gateways.sandbox import webhook_headers
from billing_graphql.http import webhooks
from billing_graphql.http.portal import pages as portal_pages
from tests.api.test_portal import SECRET as PORTAL_SECRET
from tests.api.test_portal import CREATE, path_of
from tests.helpers import GraphQLClient

SANDBOX_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LEAK = "postgres://secret@host"


@pytest.fixture
async def client(db, settings):
    configured = replace(settings, portal_secret=PORTAL_SECRET, public_url="https://billing.example",
                         sandbox_webhook_secret=SANDBOX_SECRET)
    app = create_app(configured, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield http


async def broken(*args, **kwargs):
    raise RuntimeError(f"connection string {LEAK}")


def logged(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def assert_masked_and_logged_once(response: httpx.Response, caplog) -> None:
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}
    assert LEAK not in response.text and "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    records = logged(caplog)
    assert len(records) == 1, [record.getMessage() for record in records]
    (record,) = records
    assert record.name == "billing_graphql.errors"
    assert request_id in record.getMessage() and record.request_id == request_id
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_a_portal_page_error_is_logged_with_the_request_id(client, db, keys, monkeypatch, caplog):
    session = (await GraphQLClient(client, db).ok(CREATE, {"input": {"returnUrl": "https://app.example/billing"}},
                                                  token=keys.owner))["createBillingPortalSession"]
    monkeypatch.setattr(portal_pages, "load_portal_data", broken)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        response = await client.get(path_of(session["url"]))
    assert_masked_and_logged_once(response, caplog)


async def test_a_webhook_error_is_logged_with_the_request_id(client, monkeypatch, caplog):
    monkeypatch.setattr(webhooks, "apply_gateway_event", broken)
    body = b'{"type":"payment.captured","data":{"payment_id":"ch_1"}}'
    headers = {"content-type": "application/json", "x-request-id": "lb-7f3a9c",
               **webhook_headers(SANDBOX_SECRET, "evt_boom", body)}
    with caplog.at_level(logging.ERROR):
        response = await client.post("/webhooks/sandbox", content=body, headers=headers)
    assert_masked_and_logged_once(response, caplog)
    assert response.headers["x-request-id"] == "lb-7f3a9c"  # a load balancer's id is kept


async def test_a_graphql_error_is_logged_once_with_the_request_id(client, db, keys, monkeypatch, caplog):
    from billing_graphql.services.platform import organizations

    def broken_statement(*args, **kwargs):
        raise RuntimeError(f"connection string {LEAK}")

    # the statement both paths read organizations from (the compiled path hands the error to graphql-core)
    monkeypatch.setattr(organizations, "organizations_statement", broken_statement)
    with caplog.at_level(logging.ERROR):
        response = await client.post("/graphql", json={"query": "{ organizations { edges { node { id } } } }"},
                                     headers={"authorization": f"Bearer {keys.super_admin}"})
    assert response.json()["errors"][0]["message"] == "Unexpected error." and LEAK not in response.text
    records = logged(caplog)
    assert len(records) == 1 and response.headers["x-request-id"] in records[0].getMessage()


@pytest.mark.parametrize("sent", ["", "x" * 200, "id with spaces", "évil", "a\tb"])
async def test_an_unusable_request_id_is_replaced(client, sent):
    response = await client.get("/health", headers={"x-request-id": sent.encode("utf-8")})
    assert response.headers["x-request-id"] not in ("", sent)
    assert len(response.headers["x-request-id"]) == 32


async def test_a_stream_that_breaks_after_its_answer_began_is_logged_once(client, keys, monkeypatch, caplog):
    from billing_graphql.http import payments_csv

    async def breaking_rows(*args, **kwargs):
        raise RuntimeError(f"connection string {LEAK}")
        yield  # an async generator, as the real one

    monkeypatch.setattr(payments_csv, "stream_payment_rows", breaking_rows)
    with caplog.at_level(logging.ERROR), pytest.raises(Exception):  # noqa: PT011 - the transport re-raises it
        await client.get("/payments/export.csv", params={"from": "2026-01-01", "to": "2026-01-31"},
                         headers={"authorization": f"Bearer {keys.owner}", "x-request-id": "csv-1"})
    records = logged(caplog)
    assert len(records) == 1 and records[0].request_id == "csv-1"
    assert isinstance(records[0].exc_info[1], RuntimeError)
