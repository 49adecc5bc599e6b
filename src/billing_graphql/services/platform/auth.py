"""Credentials: API keys (stored as SHA-256 only) and HS256 session tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
import weakref
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from collections.abc import MutableMapping
from typing import Any

import jwt
from cachetools import TLRUCache, TTLCache
from sqlalchemy import bindparam, select, update

from billing_graphql.db.engine import Database, outside_read_scope
from billing_graphql.db.models import ApiKey, Organization
from billing_graphql.db.prepared import Compiled
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.domain.text import forbidden_character

API_KEY_PREFIX = "bgk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The audit log stores "user:<sub>" in 200 characters; organizations' external ids are 200.
MAX_SUBJECT_LENGTH = 190
MAX_ORGANIZATION_CLAIM_LENGTH = 200

VERIFIED_SECONDS = 0.5
"""How long a process trusts what it read of a credential (an API key's row, an organization's id
by external id) before reading it again. ``revoke_api_key`` waits this long after its commit, so
once it returns no process anywhere still holds the key as valid: a cache entry was read before the
commit and has expired by then (``time.monotonic`` is one clock for every process of a machine;
the processes of several machines each wait out their own)."""
VERIFIED_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _VerifiedKey:
    id: uuid.UUID
    role: Role
    organization_id: uuid.UUID | None
    last_used_at: datetime | None
    trusted_until: float  # time.monotonic(): VERIFIED_SECONDS after the read of the row *began*


def _trusted_until(_key_hash: str, key: _VerifiedKey, _now: float) -> float:
    return key.trusted_until


class _Verified:
    """One database's verified credentials, in this process: by API key hash, and organizations'
    ids by external id (session tokens). Bounded. A key is trusted ``VERIFIED_SECONDS`` from the
    moment its row's read began (not ended: a read that began before a revocation committed is
    never trusted past ``revoke_api_key``'s return), and requests that miss the same key at once
    share one read (``reading``)."""

    def __init__(self) -> None:
        self.keys: TLRUCache[str, _VerifiedKey] = TLRUCache(VERIFIED_ENTRIES, _trusted_until, timer=time.monotonic)
        self.reading: dict[str, asyncio.Future[_VerifiedKey | None]] = {}
        self.organizations: TTLCache[str, uuid.UUID] = TTLCache(
            VERIFIED_ENTRIES, VERIFIED_SECONDS, timer=time.monotonic
        )


_verified: weakref.WeakKeyDictionary[Database, _Verified] = weakref.WeakKeyDictionary()


def _verified_for(db: Database) -> _Verified:
    verified = _verified.get(db)
    if verified is None:
        verified = _verified[db] = _Verified()
    return verified


def forget_verified(db: Database) -> None:
    """Drop everything this process verified for ``db`` (the next request reads its credential)."""
    _verified.pop(db, None)


async def forget_api_keys(db: Database, key_hashes: list[str], *, settle: bool = True) -> None:
    """After a revocation committed: drop the keys from this process's cache at once and, with
    ``settle``, wait until every other process's entry for them has expired too."""
    keys = _verified_for(db).keys
    for key_hash in key_hashes:
        keys.pop(key_hash, None)
    if settle:
        await asyncio.sleep(VERIFIED_SECONDS)


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


AUTHENTICATION = "authentication"
"""Key of a request's state (Litestar's ``scope["state"]``) holding ``(authorization, actor, refusal)``
once the request's credential was checked: the rate limiter may check it before the route does, and
reads the answer after the response (to keep or drop the credential's own budget)."""


async def authenticate_request(
    state: MutableMapping[str, Any], db: Database, authorization: str | None, *, jwt_secret: str, now: datetime
) -> Actor | None:
    """``authenticate`` once per request: the answer is kept in ``state`` and reused."""
    known = state.get(AUTHENTICATION)
    if known is None or known[0] != authorization:
        try:
            known = (authorization, await authenticate(db, authorization, jwt_secret=jwt_secret, now=now), None)
        except AuthenticationFailed as exc:
            known = (authorization, None, str(exc))
        state[AUTHENTICATION] = known
    _, actor, refusal = known
    if refusal is not None:
        raise AuthenticationFailed(refusal)
    return actor


# The key's row, the columns alone, read on the driver's connection: a process reads each key it serves again every
# VERIFIED_SECONDS, and that request waited for a session, a statement built anew and the ORM's execution (~1.3 ms
# at c=1 on the invoices page, the p99's slowest requests).
_KEY_ROW = Compiled(select(ApiKey.id, ApiKey.role, ApiKey.organization_id, ApiKey.revoked_at, ApiKey.last_used_at)
                    .where(ApiKey.key_hash == bindparam("key_hash")))


async def _read_api_key(db: Database, key_hash: str) -> _VerifiedKey | None:
    """The key's row as this moment's request may trust it; None for an unknown or revoked key."""
    started = time.monotonic()
    rows = await _KEY_ROW.on(db.engine.dialect).values(db, {"key_hash": key_hash})
    if not rows:
        return None
    key_id, role, organization_id, revoked_at, last_used_at = rows[0]
    if revoked_at is not None:
        return None
    return _VerifiedKey(key_id, role, organization_id, last_used_at, started + VERIFIED_SECONDS)


async def _verified_api_key(db: Database, key_hash: str) -> _VerifiedKey | None:
    verified = _verified_for(db)
    key = verified.keys.get(key_hash)
    if key is not None:
        return key
    reading = verified.reading.get(key_hash)
    if reading is None:  # the first request to miss reads; the others at the same moment wait for it
        # Outside the first request's read scope, which ends with that request (a client that goes away
        # must not take the others' read with it).
        reading = verified.reading[key_hash] = asyncio.get_running_loop().create_task(
            _read_api_key(db, key_hash), context=outside_read_scope())
        reading.add_done_callback(lambda _: verified.reading.pop(key_hash, None))
    key = await asyncio.shield(reading)  # a cancelled waiter does not cancel the others' read
    if key is None:
        return None
    cached = verified.keys.get(key_hash)
    if cached is not None:  # a waiter before this one put it there (and may have stamped its last use)
        return cached
    if key.trusted_until > time.monotonic():
        verified.keys[key_hash] = key
    return key


async def _authenticate_api_key(db: Database, token: str, now: datetime) -> Actor:
    key_hash = hash_api_key(token)
    key = await _verified_api_key(db, key_hash)
    if key is None:
        raise AuthenticationFailed("Invalid or revoked API key.")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        cache = _verified_for(db).keys
        if key_hash in cache:  # stamped once: the requests after this one see the new time
            cache[key_hash] = replace(key, last_used_at=now)
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
        organizations = _verified_for(db).organizations
        organization_id = organizations.get(external_id)
        if organization_id is None:
            async with db.read() as session:
                organization_id = await session.scalar(
                    select(Organization.id).where(Organization.external_id == external_id)
                )
            if organization_id is None:
                raise AuthenticationFailed("Session token names an unknown organization.")
            organizations[external_id] = organization_id
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
