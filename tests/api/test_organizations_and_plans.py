"""Organizations (super-admin), plans for everyone authenticated, node(id), the test clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import update

from billing_graphql.app import create_app
from billing_graphql.db.models import Plan
from billing_graphql.demo import seed_demo
from tests.helpers import T0, GraphQLClient, gid, test_settings

PLANS = "query($all: Boolean! = false) { plans(includeInactive: $all) { slug isActive basePriceMonthly { amount currency } } }"


async def test_organizations_are_paged_in_sql(api, keys):
    for index in range(3):
        await api.ok(
            'mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { errors { code } } }',
            {"i": {"name": f"Org {index}", "externalId": f"org-{index}"}},
            token=keys.super_admin,
        )
    query = "query($after: String) { organizations(first: 2, after: $after) { edges { cursor node { externalId } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"
    first = (await api.ok(query, token=keys.super_admin))["organizations"]
    assert len(first["edges"]) == 2
    assert first["pageInfo"]["hasNextPage"] and not first["pageInfo"]["hasPreviousPage"]
    seen = [e["node"]["externalId"] for e in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after:
        page = (await api.ok(query, {"after": after}, token=keys.super_admin))["organizations"]
        seen += [e["node"]["externalId"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert sorted(seen) == sorted(["acme", "globex", "org-0", "org-1", "org-2"])
    assert len(seen) == len(set(seen))


async def test_owner_cannot_list_organizations(api, keys):
    result = await api.post("{ organizations { edges { node { id } } } }", token=keys.owner)
    assert result["data"] == {"organizations": None}
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_plans_in_display_order_and_inactive_hidden_from_tenants(api, db, keys):
    await seed_demo(db, T0)
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.slug == "team").values(is_active=False))
    tenant = [p["slug"] for p in (await api.ok(PLANS, token=keys.member))["plans"]]
    assert tenant == ["free", "pro", "enterprise", "starter-idr", "growth-idr", "business-idr"]
    everything = (await api.ok(PLANS, {"all": True}, token=keys.super_admin))["plans"]
    assert [p["slug"] for p in everything][:4] == ["free", "pro", "team", "enterprise"]
    assert {"slug": "pro", "isActive": True, "basePriceMonthly": {"amount": "29.00", "currency": "USD"}} in everything
    refused = await api.post(PLANS, {"all": True}, token=keys.owner)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    hidden = await api.ok('{ plan(slug: "team") { slug } }', token=keys.member)
    assert hidden["plan"] is None


async def test_node_resolves_plans_and_scopes_organizations(api, db, keys):
    await seed_demo(db, T0)
    plan = (await api.ok('{ plan(slug: "growth-idr") { id basePriceMonthly { formatted } } }', token=keys.member))["plan"]
    assert plan["basePriceMonthly"]["formatted"] == "Rp 599,000"
    node = await api.ok("query($id: ID!) { node(id: $id) { id ... on Plan { slug } } }", {"id": plan["id"]},
                        token=keys.member)
    assert node["node"] == {"id": plan["id"], "slug": "growth-idr"}
    own = gid("Organization", keys.organization_id)
    other = gid("Organization", keys.other_organization_id)
    query = "query($id: ID!) { node(id: $id) { ... on Organization { externalId } } }"
    assert (await api.ok(query, {"id": own}, token=keys.owner))["node"] == {"externalId": "acme"}
    # Another organization's object is NOT_FOUND exactly like a missing one: null.
    assert (await api.ok(query, {"id": other}, token=keys.owner))["node"] is None
    assert (await api.ok(query, {"id": gid("Organization", uuid.uuid4())}, token=keys.owner))["node"] is None
    assert (await api.ok(query, {"id": other}, token=keys.super_admin))["node"] == {"externalId": "globex"}


async def test_clock_cannot_be_advanced_without_the_test_clock(api, keys):
    result = await api.post(
        'mutation { advanceClock(input: {to: "2030-01-01T00:00:00Z"}) { clock { now } } }', token=keys.super_admin
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "BILLING_TEST_CLOCK" in result["errors"][0]["message"]


async def test_test_clock_is_frozen_and_moves_only_forward(db, database_url, keys):
    app = create_app(test_settings(database_url, test_clock=True), db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        api = GraphQLClient(client, db)
        first = (await api.ok("{ clock { now frozen } }", token=keys.owner))["clock"]
        second = (await api.ok("{ clock { now frozen } }", token=keys.owner))["clock"]
        assert first == second and first["frozen"] is True
        advance = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code field } } }'
        target = "2099-03-01T12:00:00Z"
        moved = await api.ok(advance, {"to": target}, token=keys.super_admin)
        assert moved["advanceClock"]["clock"]["now"] == target
        assert (await api.ok("{ clock { now } }", token=keys.owner))["clock"]["now"] == target
        back = await api.ok(advance, {"to": "2099-01-01T00:00:00Z"}, token=keys.super_admin)
        assert back["advanceClock"]["errors"] == [{"code": "VALIDATION", "field": "to"}]
        naive = await api.post(advance, {"to": "2099-05-01T00:00:00"}, token=keys.super_admin)
        assert "time zone" in naive["errors"][0]["message"]
        forbidden = await api.post(advance, {"to": "2100-01-01T00:00:00Z"}, token=keys.owner)
        assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_health_reports_the_database(api):
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_session_token_expiry_uses_the_test_clock(db, database_url, keys):
    from billing_graphql.domain.roles import Role
    from billing_graphql.services.platform.auth import issue_session_token

    settings = test_settings(database_url, test_clock=True)
    app = create_app(settings, db=db, freeze_gc=False)
    token = issue_session_token(settings.jwt_secret, subject="u", organization_external_id="acme", role=Role.OWNER,
                                expires_at=T0 + timedelta(days=365 * 200))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        api = GraphQLClient(client, db)
        assert (await api.ok("{ viewer { role } }", token=token))["viewer"]["role"] == "OWNER"
        await api.ok('mutation { advanceClock(input: {to: "2300-01-01T00:00:00Z"}) { errors { code } } }',
                     token=keys.super_admin)
        assert (await api.post("{ viewer { role } }", token=token))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
