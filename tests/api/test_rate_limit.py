"""Rate limiting (issue 13, item 6): refused credentials count against the caller's address,
429 carries Retry-After and a RATE_LIMITED error, X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import secrets

import httpx

from billing_graphql.app import create_app
from tests.helpers import test_settings

QUERY = {"query": "{ viewer { role } }"}


def _client(db, database_url, client_address: str = "203.0.113.7", **overrides) -> httpx.AsyncClient:
    app = create_app(test_settings(database_url, **overrides), db=db, freeze_gc=False)
    # Mid-window, for good: a test's requests never straddle two one-minute windows.
    app.state.rate_limiter.clock = lambda: 1_800_000_030.0
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _post(client: httpx.AsyncClient, token: str | None = None, **headers: str) -> httpx.Response:
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=QUERY, headers=headers)


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"


async def test_junk_credentials_count_against_the_address(db, database_url, keys):
    async with _client(db, database_url, rate_limit=5) as client:
        statuses = [(await _post(client, "bgk_" + secrets.token_urlsafe(32))).status_code for _ in range(5)]
        assert statuses == [200] * 5  # answered (UNAUTHENTICATED), but counted
        _assert_limited(await _post(client, "junk-" + secrets.token_hex(8)))
        _assert_limited(await _post(client))  # anonymous: the same address budget


async def test_a_working_credential_has_its_own_budget(db, database_url, keys):
    async with _client(db, database_url, rate_limit=3) as client:
        # Counted on the credential from its first request (issue 19): three, then 429.
        for _ in range(3):
            response = await _post(client, keys.owner)
            assert response.json()["data"]["viewer"]["role"] == "OWNER"
        _assert_limited(await _post(client, keys.owner))
        # The address still has its three requests, and another key its own budget.
        for _ in range(3):
            assert (await _post(client, keys.admin)).json()["data"]["viewer"]["role"] == "ADMIN"
        _assert_limited(await _post(client, keys.admin))
        for _ in range(3):
            assert (await _post(client)).status_code == 200
        _assert_limited(await _post(client))


async def test_a_revoked_key_falls_back_to_the_address(api, db, database_url, keys):
    async with _client(db, database_url, rate_limit=3) as client:
        assert (await _post(client, keys.member)).status_code == 200  # credential: 1
        assert (await _post(client, keys.member)).status_code == 200  # credential: 2
        listed = await api.ok("{ apiKeys { id label } }", token=keys.owner)
        member_key = next(key for key in listed["apiKeys"] if key["label"] == "MEMBER")
        revoked = await api.ok(
            "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { errors { code } } }",
            {"i": {"id": member_key["id"]}}, token=keys.owner,
        )
        assert revoked["revokeApiKey"]["errors"] == []
        refused = await _post(client, keys.member)  # credential: 3, and now forgotten
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        for _ in range(3):  # address: 1, 2, 3
            assert (await _post(client, keys.member)).status_code == 200
        _assert_limited(await _post(client, keys.member))
        _assert_limited(await _post(client))


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(db, database_url, keys):
    async with _client(db, database_url, rate_limit=2) as client:
        for index in range(2):
            assert (await _post(client, **{"x-forwarded-for": f"198.51.100.{index}"})).status_code == 200
        # A new X-Forwarded-For value does not buy a new budget from an untrusted peer.
        _assert_limited(await _post(client, **{"x-forwarded-for": "198.51.100.99"}))

    async with _client(db, database_url, client_address="10.0.0.5", rate_limit=2,
                       trusted_proxies=("10.0.0.0/8",)) as client:
        for _ in range(2):
            assert (await _post(client, **{"x-forwarded-for": "192.0.2.1, 10.0.0.9"})).status_code == 200
        _assert_limited(await _post(client, **{"x-forwarded-for": "192.0.2.1"}))
        # Behind the trusted proxy another client has its own budget; a forged left-most
        # hop does not matter, the right-most untrusted hop is the client.
        assert (await _post(client, **{"x-forwarded-for": "192.0.2.1, 192.0.2.2"})).status_code == 200


async def test_health_is_not_rate_limited(db, database_url):
    async with _client(db, database_url, rate_limit=1) as client:
        for _ in range(3):
            assert (await client.get("/health")).status_code == 200
