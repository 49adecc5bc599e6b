"""Credentials: API keys (stored as SHA-256 only) and HS256 session tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import jwt
from sqlalchemy import select, update

from billing_graphql.db.engine import Database
from billing_graphql.db.models import ApiKey, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role

API_KEY_PREFIX = "bgk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class AuthenticationFailed(Exception):
    """The credential given is malformed, unknown, revoked or expired."""


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_session_token(
    secret: str, *, subject: str, organization_external_id: str | None, role: Role, expires_at: datetime
) -> str:
    claims = {"sub": subject, "role": role.value, "exp": int(expires_at.timestamp())}
    if organization_external_id is not None:
        claims["org"] = organization_external_id
    return jwt.encode(claims, secret, algorithm="HS256")


async def authenticate(db: Database, authorization: str | None, *, jwt_secret: str, now: datetime) -> Actor | None:
    """The actor behind an ``Authorization`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
    if token.startswith(API_KEY_PREFIX):
        return await _authenticate_api_key(db, token, now)
    return await _authenticate_session_token(db, token, jwt_secret, now)


async def _authenticate_api_key(db: Database, token: str, now: datetime) -> Actor:
    async with db.read() as session:
        key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(token)))
    if key is None or key.revoked_at is not None:
        raise AuthenticationFailed("Invalid or revoked API key.")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        async with db.write() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return Actor(
        role=key.role,
        organization_id=key.organization_id,
        subject=f"api_key:{key.id}",
        api_key_id=key.id,
    )


async def _authenticate_session_token(db: Database, token: str, secret: str, now: datetime) -> Actor:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub", "role"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed(f"Invalid session token: {exc}.") from None
    # Expiry is checked against our clock (the test clock when it is on).
    if int(claims["exp"]) <= now.timestamp():
        raise AuthenticationFailed("Session token expired.")
    try:
        role = Role(claims["role"])
    except ValueError:
        raise AuthenticationFailed("Session token has an unknown role.") from None
    organization_id: uuid.UUID | None = None
    if role.needs_organization:
        external_id = claims.get("org")
        if not external_id:
            raise AuthenticationFailed("Session token lacks the 'org' claim.")
        async with db.read() as session:
            organization_id = await session.scalar(
                select(Organization.id).where(Organization.external_id == str(external_id))
            )
        if organization_id is None:
            raise AuthenticationFailed("Session token names an unknown organization.")
    elif role is Role.PARTNER:
        raise AuthenticationFailed("Partners authenticate with an API key.")
    return Actor(role=role, organization_id=organization_id, subject=f"user:{claims['sub']}")
