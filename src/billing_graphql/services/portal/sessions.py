"""Billing portal links: short-lived, organization-bound JWTs for the pages this gateway serves.

A session is a JWT (HS256, keyed with ``BILLING_PORTAL_SECRET``) with the audience
``billing-portal``, the organization's id, the return URL, an expiry
(``BILLING_PORTAL_SESSION_MINUTES``, 30 by default) checked against our clock (the test clock
when it is on), the API key that asked for it and the organization's portal epoch. A link ends
when it expires, when its API key is revoked, or when ``revokeBillingPortalSessions`` raises the
organization's epoch (``open_portal_session`` checks all three on every request).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import jwt
from sqlalchemy import select, update

from billing_graphql.db.engine import Database
from billing_graphql.db.models import ApiKey, Organization
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.roles import Role
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.settings import Settings

AUDIENCE = "billing-portal"
MAX_RETURN_URL_LENGTH = 2000


class PortalTokenInvalid(Exception):
    """The portal link is malformed, forged, expired, ended, or for an organization that is gone."""


@dataclass(frozen=True, slots=True)
class PortalSession:
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PortalClaims:
    organization_id: uuid.UUID
    return_url: str
    expires_at: datetime
    api_key_id: uuid.UUID | None = None
    epoch: int = 0
    role: Role = Role.ADMIN  # the role of who asked for the link (what the portal may do for them)


def clean_return_url(value: str) -> str:
    url = value.strip()
    if not url or len(url) > MAX_RETURN_URL_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise validation(f"returnUrl is an http(s) URL of at most {MAX_RETURN_URL_LENGTH} characters.", "returnUrl")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise validation("returnUrl is not a valid URL.", "returnUrl") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise validation("returnUrl must be an http or https URL with a host.", "returnUrl")
    return url


def _secret(settings: Settings) -> str:
    if not settings.portal_secret:
        raise BillingError(
            BillingErrorCode.PORTAL_ERROR,
            "The billing portal is not configured: set BILLING_PORTAL_SECRET.",
        )
    return settings.portal_secret


async def create_portal_session(
    db: Database, actor: Actor, *, return_url: str | None, settings: Settings, now: datetime
) -> PortalSession:
    """A portal link for the actor's organization; its back link goes to ``return_url``, or to
    BILLING_PUBLIC_URL when none is given. It names the actor's API key (revoking the key ends
    it) and the organization's current portal epoch."""
    secret = _secret(settings)
    return_url = clean_return_url(return_url if return_url is not None else settings.public_url)
    organization_id = actor.organization_id
    if organization_id is None:
        raise not_found("Organization", None)
    expires_at = (now + timedelta(minutes=settings.portal_session_minutes)).replace(microsecond=0)
    session_id = uuid.uuid4().hex
    async with db.write() as session:
        epoch = await session.scalar(select(Organization.portal_session_epoch)
                                     .where(Organization.id == organization_id))
        if epoch is None:
            raise not_found("Organization", None)
        claims = {"aud": AUDIENCE, "org": str(organization_id), "ret": return_url, "iat": int(now.timestamp()),
                  "exp": int(expires_at.timestamp()), "jti": session_id, "epoch": epoch}
        if actor.api_key_id is not None:
            claims["key"] = str(actor.api_key_id)
        claims["role"] = actor.role.value
        record_audit(
            session,
            actor=actor,
            action="portal_session.created",
            object_type="PortalSession",
            object_id=session_id,
            organization_id=organization_id,
            now=now,
            after={"return_url": return_url, "expires_at": expires_at.isoformat()},
        )
    token = jwt.encode(claims, secret, algorithm="HS256")
    return PortalSession(url=f"{settings.public_url}/portal/{token}", expires_at=expires_at)


def read_portal_token(token: str, *, settings: Settings, now: datetime) -> PortalClaims:
    """The link's claims, checked for signature and expiry (at ``now``: the test clock's time
    when it is on). ``open_portal_session`` adds what the database knows."""
    if not settings.portal_secret:
        raise PortalTokenInvalid("The billing portal is not available.")
    try:
        claims = jwt.decode(
            token,
            settings.portal_secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            # Expiry is checked against the gateway's clock below; `iat` is not compared with the real
            # clock (a link issued at a test clock ahead of it is valid at that clock's time).
            options={"require": ["exp", "aud", "org", "ret"], "verify_exp": False, "verify_iat": False},
        )
        organization_id = uuid.UUID(str(claims["org"]))
        return_url = clean_return_url(str(claims["ret"]))
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        api_key_id = uuid.UUID(str(claims["key"])) if claims.get("key") is not None else None
        epoch = int(claims.get("epoch", 0))
        role = Role(claims.get("role", Role.ADMIN.value))
        if role not in (Role.OWNER, Role.ADMIN):
            raise ValueError(role)
    except (jwt.PyJWTError, ValueError, TypeError, BillingError):
        raise PortalTokenInvalid("This billing portal link is not valid.") from None
    if expires_at <= now:
        raise PortalTokenInvalid("This billing portal link has expired.")
    return PortalClaims(organization_id=organization_id, return_url=return_url, expires_at=expires_at,
                        api_key_id=api_key_id, epoch=epoch, role=role)


ENDED = "This billing portal link has been ended."


async def open_portal_session(db: Database, token: str, *, settings: Settings, now: datetime) -> PortalClaims:
    """``read_portal_token``, then: the organization still exists, its sessions were not revoked
    since the link was issued, and the API key that asked for it is not revoked. One statement."""
    claims = read_portal_token(token, settings=settings, now=now)
    async with db.read() as session:
        row = (await session.execute(
            select(Organization.portal_session_epoch, ApiKey.revoked_at, ApiKey.organization_id)
            .outerjoin(ApiKey, ApiKey.id == claims.api_key_id)
            .where(Organization.id == claims.organization_id)
        )).first()
    if row is None:
        raise PortalTokenInvalid("This billing portal link is not valid.")
    epoch, key_revoked_at, key_organization = row
    if claims.epoch != epoch:
        raise PortalTokenInvalid(ENDED)
    if claims.api_key_id is not None and (key_organization != claims.organization_id or key_revoked_at is not None):
        raise PortalTokenInvalid(ENDED)
    return claims


async def revoke_portal_sessions(db: Database, actor: Actor, *, organization_id: uuid.UUID | None,
                                 now: datetime) -> uuid.UUID:
    """``revokeBillingPortalSessions``: every portal link of the organization issued so far stops
    working (its epoch is raised); links issued afterwards work. Audited. Tenants name their own
    organization (or none); super-admins name one."""
    scope = actor.organization_in_scope(organization_id)
    if scope is None:
        raise not_found("Organization", "organizationId")
    async with db.write() as session:
        raised = await session.execute(
            update(Organization).where(Organization.id == scope)
            .values(portal_session_epoch=Organization.portal_session_epoch + 1, updated_at=now)
            .returning(Organization.portal_session_epoch)
        )
        epoch = raised.scalar_one_or_none()
        if epoch is None:
            raise not_found("Organization", "organizationId")
        record_audit(session, actor=actor, action="portal_sessions.revoked", object_type="Organization",
                     object_id=str(scope), organization_id=scope, now=now,
                     before={"portal_session_epoch": epoch - 1}, after={"portal_session_epoch": epoch})
    return scope
