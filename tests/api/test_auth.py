"""Authentication and roles: API keys, session tokens, UNAUTHENTICATED and FORBIDDEN."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from billing_graphql.db.models import ApiKey, AuditEvent, Organization
from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.auth import hash_api_key, issue_session_token
from tests.helpers import T0, gid

VIEWER = "{ viewer { role subject organization { name externalId } } }"
CREATE_ORG = """
mutation Create($input: CreateOrganizationInput!) {
  createOrganization(input: $input) { organization { id name externalId } errors { code message field } }
}
"""


async def _count(db, model) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_no_credentials_is_unauthenticated(api, keys):
    result = await api.post(VIEWER)
    assert result["data"] == {"viewer": None}
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_unknown_api_key_is_unauthenticated(api, keys):
    result = await api.post(VIEWER, token="bgk_not-a-real-key")
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Invalid or revoked API key" in result["errors"][0]["message"]


async def test_wrong_scheme_is_unauthenticated(api, keys):
    response = await api.client.post(
        "/graphql", json={"query": VIEWER}, headers={"authorization": f"Basic {keys.owner}"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_api_key_resolves_role_and_organization(api, keys):
    data = await api.ok(VIEWER, token=keys.member)
    assert data["viewer"]["role"] == "MEMBER"
    assert data["viewer"]["organization"] == {"name": "Acme", "externalId": "acme"}
    data = await api.ok(VIEWER, token=keys.super_admin)
    assert data["viewer"]["role"] == "SUPER_ADMIN"
    assert data["viewer"]["organization"] is None


async def test_api_key_is_stored_as_hash_only(db, keys):
    async with db.read() as session:
        stored = (await session.scalars(select(ApiKey.key_hash))).all()
    assert hash_api_key(keys.owner) in stored
    assert all(keys.owner not in value for value in stored)


async def test_revoked_key_is_refused(api, keys):
    created = await api.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id role } errors { code } } }",
        {"i": {"organizationId": keys.organization_gid, "role": "ADMIN", "label": "ci"}},
        token=keys.owner,
    )
    new_key = created["createApiKey"]["key"]
    assert new_key.startswith("bgk_")
    assert (await api.ok(VIEWER, token=new_key))["viewer"]["role"] == "ADMIN"
    revoked = await api.ok(
        "mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { apiKey { revokedAt } errors { code } } }",
        {"i": {"id": created["createApiKey"]["apiKey"]["id"]}},
        token=keys.owner,
    )
    assert revoked["revokeApiKey"]["errors"] == []
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    result = await api.post(VIEWER, token=new_key)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_owner_cannot_create_keys_for_another_organization(api, db, keys):
    before = await _count(db, ApiKey)
    result = await api.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key errors { code field } } }",
        {"i": {"organizationId": gid("Organization", keys.other_organization_id), "role": "OWNER"}},
        token=keys.owner,
    )
    assert result["createApiKey"]["key"] is None
    assert result["createApiKey"]["errors"][0]["code"] == "NOT_FOUND"
    assert await _count(db, ApiKey) == before


async def test_owner_cannot_mint_super_admin_keys(api, db, keys):
    before = await _count(db, ApiKey)
    result = await api.ok(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key errors { code field } } }",
        {"i": {"role": "SUPER_ADMIN"}},
        token=keys.owner,
    )
    assert result["createApiKey"]["key"] is None
    assert result["createApiKey"]["errors"][0]["code"] == "VALIDATION"
    assert await _count(db, ApiKey) == before


async def test_member_calling_create_organization_is_forbidden_and_writes_nothing(api, db, keys):
    organizations, audits = await _count(db, Organization), await _count(db, AuditEvent)
    result = await api.post(CREATE_ORG, {"input": {"name": "Evil", "externalId": "evil"}}, token=keys.member)
    assert result["data"] == {"createOrganization": None}
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _count(db, Organization) == organizations
    assert await _count(db, AuditEvent) == audits


async def test_session_token_acts_for_its_organization(api, keys, settings):
    token = issue_session_token(
        settings.jwt_secret,
        subject="user-42",
        organization_external_id="acme",
        role=Role.ADMIN,
        expires_at=T0 + timedelta(days=3650),
    )
    data = await api.ok(VIEWER, token=token)
    assert data["viewer"] == {
        "role": "ADMIN",
        "subject": "user:user-42",
        "organization": {"name": "Acme", "externalId": "acme"},
    }


async def test_expired_or_forged_session_token_is_refused(api, keys, settings):
    expired = issue_session_token(
        settings.jwt_secret, subject="u", organization_external_id="acme", role=Role.OWNER,
        expires_at=T0 - timedelta(seconds=1),
    )
    result = await api.post(VIEWER, token=expired)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in result["errors"][0]["message"]
    forged = issue_session_token(
        "another-secret-of-enough-length-for-hs256", subject="u", organization_external_id="acme", role=Role.OWNER,
        expires_at=T0 + timedelta(days=3650),
    )
    result = await api.post(VIEWER, token=forged)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_session_token_for_unknown_organization_is_refused(api, keys, settings):
    token = issue_session_token(
        settings.jwt_secret, subject="u", organization_external_id="nope", role=Role.OWNER,
        expires_at=T0 + timedelta(days=3650),
    )
    result = await api.post(VIEWER, token=token)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_super_admin_creates_organization_with_audit(api, db, keys):
    data = await api.ok(CREATE_ORG, {"input": {"name": "Initech", "externalId": "initech"}}, token=keys.super_admin)
    payload = data["createOrganization"]
    assert payload["errors"] == []
    assert payload["organization"]["externalId"] == "initech"
    async with db.read() as session:
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert "organization.created" in actions
    again = await api.ok(CREATE_ORG, {"input": {"name": "Initech 2", "externalId": "initech"}}, token=keys.super_admin)
    assert again["createOrganization"]["errors"] == [
        {"code": "ALREADY_EXISTS", "message": "An organization with external id 'initech' exists.",
         "field": "externalId"}
    ]
