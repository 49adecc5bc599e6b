"""API keys: created once (the plain key is shown only then), stored as a hash, revocable."""

from __future__ import annotations

from typing import Any

import uuid
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import ApiKey, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.roles import OWNER_GRANTABLE, Role
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.services.platform.auth import forget_api_keys, generate_api_key, hash_api_key


def _may_manage(actor: Actor | None, organization_id: uuid.UUID | None, role: Role) -> bool:
    if actor is None or actor.is_super_admin:
        return True  # the CLI (no actor) and super-admins manage every key
    return (
        actor.role is Role.OWNER
        and organization_id is not None
        and organization_id == actor.organization_id
        and role in OWNER_GRANTABLE
    )


async def create_api_key(
    db: Database,
    actor: Actor | None,
    *,
    role: Role,
    organization_id: uuid.UUID | None,
    label: str,
    now: datetime,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plain text, which is not stored anywhere."""
    label = label.strip()
    if len(label) > 200:
        raise validation("Label is at most 200 characters.", "label")
    if role.needs_organization and organization_id is None:
        raise validation(f"A {role.value} key needs an organization.", "organizationId")
    if not role.needs_organization and organization_id is not None:
        raise validation(f"A {role.value} key belongs to no organization.", "organizationId")
    if not _may_manage(actor, organization_id, role):
        if role not in OWNER_GRANTABLE:
            raise BillingError(
                BillingErrorCode.VALIDATION,
                "Owners may create OWNER, ADMIN and MEMBER keys for their own organization only.",
                field="role",
            )
        raise not_found("Organization", "organizationId")
    plain = generate_api_key()
    key = ApiKey(
        id=uuid.uuid4(),
        organization_id=organization_id,
        role=role,
        label=label,
        key_hash=hash_api_key(plain),
        key_prefix=plain[:12],
        created_at=now,
    )
    async with db.write() as session:
        if organization_id is not None and await session.get(Organization, organization_id) is None:
            raise not_found("Organization", "organizationId")
        session.add(key)
        record_audit(session, actor=actor, action="api_key.created", object_type="ApiKey", object_id=key.id,
                     organization_id=organization_id, now=now,
                     after={"role": role.value, "label": label, "prefix": key.key_prefix})
    return key, plain


async def revoke_api_key(
    db: Database, actor: Actor | None, *, key_id: uuid.UUID, now: datetime, settle: bool = True
) -> ApiKey:
    """Revoke a key. It returns once no process still takes the key (``auth.forget_api_keys``);
    ``settle=False`` skips that wait, for a caller revoking several keys that waits once itself."""
    async with db.write() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
        if key is None or not _may_manage(actor, key.organization_id, key.role):
            raise not_found("API key")
        if key.revoked_at is None:
            key.revoked_at = now
            record_audit(session, actor=actor, action="api_key.revoked", object_type="ApiKey", object_id=key.id,
                         organization_id=key.organization_id, now=now)
    await forget_api_keys(db, [key.key_hash], settle=settle)
    return key


def api_keys_statement(organization_id: uuid.UUID | None) -> Any:
    """The keys of ``organization_id`` (None: of every organization), oldest first."""
    statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    return statement if organization_id is None else statement.where(ApiKey.organization_id == organization_id)
