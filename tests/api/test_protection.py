"""Protection: depth, alias and token limits, no GET operations, body limit, rate limit,
introspection switch, and masking of unexpected errors."""

from __future__ import annotations

import httpx
import orjson
import pytest
from graphql import GraphQLError
from sqlalchemy import func, select

from billing_graphql.app import create_app
from billing_graphql.db.models import Organization
from billing_graphql.graphql.errors import ClientError, should_mask_error
from tests.helpers import GraphQLClient, test_settings


async def _client_with(db, database_url, **overrides):
    app = create_app(test_settings(database_url, **overrides), db=db, freeze_gc=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _organizations(db) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(Organization))


async def test_query_deeper_than_the_limit_is_refused(db, database_url, keys):
    async with await _client_with(db, database_url, max_query_depth=1) as client:
        api = GraphQLClient(client, db)
        result = await api.post("query Deep { viewer { organization { name } } }", token=keys.owner)
    assert result.get("data") is None
    assert "exceeds maximum operation depth of 1" in result["errors"][0]["message"]
    async with await _client_with(db, database_url, max_query_depth=2) as client:
        data = await GraphQLClient(client, db).ok("query Deep { viewer { organization { name } } }", token=keys.owner)
    assert data["viewer"]["organization"]["name"] == "Acme"


async def test_too_many_aliases_is_refused_and_writes_nothing(api, db, keys):
    fields = " ".join(
        f'a{i}: createOrganization(input: {{name: "n{i}", externalId: "x{i}"}}) {{ errors {{ code }} }}'
        for i in range(31)
    )
    before = await _organizations(db)
    result = await api.post(f"mutation Many {{ {fields} }}", token=keys.super_admin)
    assert result.get("data") is None
    assert "aliases" in result["errors"][0]["message"]
    assert await _organizations(db) == before


async def test_too_many_tokens_is_refused(db, database_url, keys):
    async with await _client_with(db, database_url, max_tokens=50) as client:
        result = await GraphQLClient(client, db).post(
            "query Big { " + " ".join("viewer { role }" for _ in range(20)) + " }", token=keys.owner
        )
    assert result.get("data") is None
    assert "token" in result["errors"][0]["message"].lower()


async def test_operations_over_get_are_refused(api, keys):
    response = await api.client.get(
        "/graphql", params={"query": "{ viewer { role } }"},
        headers={"authorization": f"Bearer {keys.owner}", "accept": "application/json"},
    )
    assert response.status_code in (400, 405)
    assert "viewer" not in response.text


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger", "/schema/redoc"])
async def test_no_openapi_pages_describe_the_routes(api, path):
    """Litestar serves OpenAPI pages at /schema unless told not to; the gateway's API is its GraphQL schema."""
    response = await api.client.get(path)
    assert response.status_code == 404
    assert "portal" not in response.text and "openapi" not in response.text.lower()


async def test_graphiql_is_served_on_get_when_enabled(api):
    response = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@pytest.mark.parametrize("sent", ["with content-length", "chunked", "registered query"])
async def test_request_body_over_the_limit_is_refused_as_graphql(db, database_url, keys, sent):
    """Issue 19 item 6: 413, shaped as a GraphQL request error with the code PAYLOAD_TOO_LARGE, whether the
    size is announced or only streamed, on the generic and on the compiled path."""
    from tests.api.test_queries_dir import QUERIES

    query = next(QUERIES.rglob("Viewer.graphql")).read_text() if sent == "registered query" else "{ viewer { role } }"
    body = orjson.dumps({"query": query, "variables": {"pad": "x" * 4096}})

    async def chunks():
        for start in range(0, len(body), 512):
            yield body[start:start + 512]

    async with await _client_with(db, database_url, max_body_bytes=1024) as client:
        response = await client.post(
            "/graphql", content=chunks() if sent == "chunked" else body,
            headers={"authorization": f"Bearer {keys.owner}", "content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert list(answer) == ["errors"]
    assert answer["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert "1024 bytes" in answer["errors"][0]["message"]


async def test_introspection_can_be_turned_off(db, database_url, keys):
    query = "{ __schema { queryType { name } } }"
    async with await _client_with(db, database_url, introspection=False) as client:
        result = await GraphQLClient(client, db).post(query, token=keys.owner)
    assert result.get("data") is None
    assert "introspection" in result["errors"][0]["message"].lower()
    async with await _client_with(db, database_url) as client:
        data = await GraphQLClient(client, db).ok(query, token=keys.owner)
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_unexpected_errors_are_masked(api, keys, monkeypatch):
    from billing_graphql.services.platform import organizations

    def broken(*args, **kwargs):
        raise RuntimeError("connection string postgres://secret@host")

    # the statement both paths read organizations from (the compiled path hands the error to graphql-core)
    monkeypatch.setattr(organizations, "organizations_statement", broken)
    result = await api.post("{ organizations { edges { node { id } } } }", token=keys.super_admin)
    assert result["errors"][0]["message"] == "Unexpected error."
    assert "secret" not in str(result)


def test_mask_rule_keeps_expected_errors():
    assert should_mask_error(GraphQLError("x", original_error=RuntimeError("boom")))
    assert not should_mask_error(GraphQLError("x", original_error=ClientError("bad input")))
    assert not should_mask_error(GraphQLError("validation error"))


@pytest.mark.parametrize("first", [101, -1])
async def test_connection_page_size_is_bounded(api, keys, first):
    result = await api.post(
        "query($f: Int) { organizations(first: $f) { edges { node { id } } } }", {"f": first}, token=keys.super_admin
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 0 and 100" in result["errors"][0]["message"]
