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
from billing_graphql.domain.text import forbidden_character

API_KEY_PREFIX = "bgk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The audit log stores "user:<sub>" in 200 characters; organizations' external ids are 200.
MAX_SUBJECT_LENGTH = 190
MAX_ORGANIZATION_CLAIM_LENGTH = 200


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
    async with db.read() as session:  # the columns alone: no ORM object on every request
        key = (await session.execute(
            select(ApiKey.id, ApiKey.role, ApiKey.organization_id, ApiKey.revoked_at, ApiKey.last_used_at)
            .where(ApiKey.key_hash == hash_api_key(token))
        )).first()
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
            options={"require": ["exp", "sub", "role"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationFailed(f"Invalid session token: {exc}.") from None
    # Expiry is checked against our clock (the test clock when it is on).
    expires = claims["exp"]
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise AuthenticationFailed("Session token has a malformed 'exp' claim.")
    if expires <= now.timestamp():
        raise AuthenticationFailed("Session token expired.")
    try:
        role = Role(claims["role"])
    except (ValueError, TypeError):
        raise AuthenticationFailed("Session token has an unknown role.") from None
    subject = _text_claim(claims, "sub", MAX_SUBJECT_LENGTH)
    organization_id: uuid.UUID | None = None
    if role.needs_organization:
        if not claims.get("org"):
            raise AuthenticationFailed("Session token lacks the 'org' claim.")
        external_id = _text_claim(claims, "org", MAX_ORGANIZATION_CLAIM_LENGTH)
        async with db.read() as session:
            organization_id = await session.scalar(
                select(Organization.id).where(Organization.external_id == external_id)
            )
        if organization_id is None:
            raise AuthenticationFailed("Session token names an unknown organization.")
    elif role is Role.PARTNER:
        raise AuthenticationFailed("Partners authenticate with an API key.")
    return Actor(role=role, organization_id=organization_id, subject=f"user:{subject}")


def _text_claim(claims: dict, name: str, max_length: int) -> str:
    """A claim that must be non-empty text of at most ``max_length`` characters, without
    control characters; anything else makes the whole token malformed."""
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length or forbidden_character(value):
        raise AuthenticationFailed(f"Session token has a malformed '{name}' claim.")
    return value
