"""Partners: grants by super-admins (and the CLI), usageSnapshots of granted organizations only,
FORBIDDEN for any other, and every other root field of the schema refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
    is_composite_type,
)
from graphql.pyutils import Undefined
from sqlalchemy import select

from billing_graphql.db.models import ApiKey, Organization, PartnerGrant
from billing_graphql.domain.roles import Role
from billing_graphql.graphql.schema import schema
from tests.helpers import T0, count_statements, gid

GRANT = """mutation($input: PartnerAccessInput!) { grantPartnerAccess(input: $input) {
  apiKeyId organizationId errors { code field } } }"""
REVOKE = """mutation($input: PartnerAccessInput!) { revokePartnerAccess(input: $input) {
  apiKeyId organizationId errors { code field } } }"""
SNAPSHOTS = """query($ids: [ID!], $month: String, $first: Int, $after: String) {
  usageSnapshots(organizationIds: $ids, month: $month, first: $first, after: $after) {
    edges { cursor node { organization { id name } plan { slug } month metrics { metric { code } used limit overage } } }
    pageInfo { hasNextPage endCursor } } }"""
RECORD = """mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates errors { code field } } }"""


async def partner_key_id(db) -> uuid.UUID:
    async with db.read() as session:
        return await session.scalar(select(ApiKey.id).where(ApiKey.role == Role.PARTNER))


async def grant(api, keys, key_id, organization_id):
    data = await api.ok(GRANT, {"input": {"apiKeyId": gid("ApiKey", key_id),
                                          "organizationId": gid("Organization", organization_id)}},
                        token=keys.super_admin)
    return data["grantPartnerAccess"]


async def test_partner_reads_granted_snapshots_and_is_forbidden_for_any_other(api, db, keys):
    key_id = await partner_key_id(db)
    assert (await grant(api, keys, key_id, keys.organization_id))["errors"] == []
    assert (await grant(api, keys, key_id, keys.organization_id))["errors"] == []  # twice is harmless
    now = datetime.now(UTC)
    recorded = await api.ok(RECORD, {"input": {"events": [
        {"metric": "messages", "quantity": 42, "timestamp": now.isoformat(), "idempotencyKey": "k1"},
    ]}}, token=keys.owner)
    assert recorded["recordUsage"] == {"accepted": 1, "duplicates": 0, "errors": []}

    month = now.strftime("%Y-%m")
    data = await api.ok(SNAPSHOTS, {"ids": [keys.organization_gid], "month": month}, token=keys.partner)
    node = data["usageSnapshots"]["edges"][0]["node"]
    assert node["organization"] == {"id": keys.organization_gid, "name": "Acme"}
    assert node["month"] == month and node["plan"] is None
    assert node["metrics"] == [{"metric": {"code": "messages"}, "used": "42", "limit": None, "overage": "0"}]

    for ids in ([keys.organization_gid, gid("Organization", keys.other_organization_id)],
                [gid("Organization", uuid.uuid4())], [gid("Plan", keys.organization_id)]):
        result = await api.post(SNAPSHOTS, {"ids": ids}, token=keys.partner)
        assert result["data"] == {"usageSnapshots": None}
        assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]

    # Without ids: a connection over the granted organizations only.
    data = await api.ok(SNAPSHOTS, {}, token=keys.partner)
    assert [edge["node"]["organization"]["name"] for edge in data["usageSnapshots"]["edges"]] == ["Acme"]

    revoked = await api.ok(REVOKE, {"input": {"apiKeyId": gid("ApiKey", key_id),
                                              "organizationId": keys.organization_gid}}, token=keys.super_admin)
    assert revoked["revokePartnerAccess"]["errors"] == []
    result = await api.post(SNAPSHOTS, {"ids": [keys.organization_gid]}, token=keys.partner)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await api.ok(SNAPSHOTS, {}, token=keys.partner))["usageSnapshots"]["edges"] == []


async def test_grants_need_a_partner_key_an_existing_organization_and_a_super_admin(api, db, keys):
    async with db.read() as session:
        owner_key = await session.scalar(select(ApiKey.id).where(ApiKey.role == Role.OWNER))
    key_id = await partner_key_id(db)
    assert (await grant(api, keys, owner_key, keys.organization_id))["errors"] == [
        {"code": "VALIDATION", "field": "apiKeyId"}]
    assert (await grant(api, keys, uuid.uuid4(), keys.organization_id))["errors"] == [
        {"code": "NOT_FOUND", "field": "apiKeyId"}]
    assert (await grant(api, keys, key_id, uuid.uuid4()))["errors"] == [
        {"code": "NOT_FOUND", "field": "organizationId"}]
    result = await api.post(GRANT, {"input": {"apiKeyId": gid("ApiKey", key_id),
                                              "organizationId": keys.organization_gid}}, token=keys.owner)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with db.read() as session:
        assert (await session.execute(select(PartnerGrant))).all() == []


async def test_snapshot_statements_do_not_grow_with_organizations(api, db, keys):
    key_id = await partner_key_id(db)

    async def add_organizations(count: int) -> list[str]:
        ids = [uuid.uuid4() for _ in range(count)]
        async with db.write() as session:
            session.add_all(Organization(id=i, name=f"Org {i.hex[:8]}", external_id=i.hex, created_at=T0,
                                         updated_at=T0) for i in ids)
            await session.flush()
            session.add_all(PartnerGrant(api_key_id=key_id, organization_id=i, created_at=T0) for i in ids)
        return [gid("Organization", i) for i in ids]

    few = await add_organizations(2)
    many = few + await add_organizations(98)
    await api.ok(SNAPSHOTS, {"first": 1}, token=keys.partner)  # the key's first use records last_used_at
    counts = []
    for ids in (few, many):
        with count_statements(db) as counter:
            data = await api.ok(SNAPSHOTS, {"ids": ids}, token=keys.partner)
        assert len(data["usageSnapshots"]["edges"]) == len(ids)
        counts.append(counter.count)
    await add_organizations(100)
    for first in (2, 100):
        with count_statements(db) as counter:
            data = await api.ok(SNAPSHOTS, {"first": first}, token=keys.partner)
        assert len(data["usageSnapshots"]["edges"]) == first
        counts.append(counter.count)
    # 2 vs 100 ids (at most 100 a request); pages of 2 vs 100 of 200 granted organizations. On the SQL tier: the
    # grants (or the page), the organizations with their live plans, and one statement writing the connection.
    assert counts == [4, 4, 4, 4], counts


def _value(type_, depth: int = 0):
    """A value of a GraphQL input type that passes validation (required input fields only)."""
    if isinstance(type_, GraphQLNonNull):
        return _value(type_.of_type, depth)
    if isinstance(type_, GraphQLList):
        return [_value(type_.of_type, depth)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {name: _value(field.type, depth + 1) for name, field in type_.fields.items()
                if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined}
    assert isinstance(type_, GraphQLScalarType)
    return {"ID": gid("Organization", uuid.uuid4()), "String": "x", "Int": 1, "Float": 1.0, "Boolean": False,
            "Decimal": "1", "BigInt": 1, "DateTime": T0.isoformat(), "Date": "2026-01-01"}.get(type_.name, "x")


def _operation(kind: str, name: str, field) -> tuple[str, dict]:
    required = {arg_name: arg for arg_name, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)}
    declared = ", ".join(f"${arg_name}: {arg.type}" for arg_name, arg in required.items())
    passed = ", ".join(f"{arg_name}: ${arg_name}" for arg_name in required)
    selection = " { __typename }" if is_composite_type(get_named_type(field.type)) else ""
    text = f"{kind}{f'({declared})' if declared else ''} {{ {name}{f'({passed})' if passed else ''}{selection} }}"
    return text, {arg_name: _value(arg.type) for arg_name, arg in required.items()}


ROOT_FIELDS = [("query", name, field) for name, field in schema._schema.query_type.fields.items()
               if name != "usageSnapshots"] + \
              [("mutation", name, field) for name, field in schema._schema.mutation_type.fields.items()]


@pytest.mark.parametrize("kind,name,field", ROOT_FIELDS, ids=[name for _, name, _ in ROOT_FIELDS])
async def test_a_partner_key_is_refused_every_other_root_field(api, keys, kind, name, field):
    text, variables = _operation(kind, name, field)
    result = await api.post(text, variables, token=keys.partner)
    assert "errors" in result, (text, result)
    assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"], (text, result)
    assert (result.get("data") or {}).get(name) is None


def test_the_partner_test_covers_the_whole_schema():
    assert len(ROOT_FIELDS) == len(schema._schema.query_type.fields) + len(schema._schema.mutation_type.fields) - 1
    assert len(ROOT_FIELDS) > 40


async def test_cli_grant_partner(db, keys, settings, monkeypatch, capsys):
    from billing_graphql.cli import main

    monkeypatch.setenv("BILLING_DATABASE_URL", settings.database_url)
    key_id = await partner_key_id(db)
    # The CLI runs its own event loop: run it in a thread, away from the test's loop.
    code = await asyncio.to_thread(main, ["grant-partner", "--key-id", gid("ApiKey", key_id), "--org", "acme"])
    assert code == 0 and "granted" in capsys.readouterr().out
    async with db.read() as session:
        assert (await session.scalar(select(PartnerGrant.organization_id))) == keys.organization_id
