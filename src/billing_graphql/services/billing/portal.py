"""The billing portal: short-lived, organization-bound links to a page this gateway serves.

A session is a JWT (HS256, keyed with ``BILLING_PORTAL_SECRET``) with the audience
``billing-portal``, the organization's id, the return URL and an expiry
(``BILLING_PORTAL_SESSION_MINUTES``, 30 by default), checked against our clock (the test clock
when it is on). The page lists the organization's live subscription, its invoices (with PDF
links under the same token) and its payment methods.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Invoice, Organization, PaymentMethod, Plan, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.settings import Settings

AUDIENCE = "billing-portal"
MAX_RETURN_URL_LENGTH = 2000
INVOICES_SHOWN = 50


class PortalTokenInvalid(Exception):
    """The portal link is malformed, forged, expired or for an organization that is gone."""


@dataclass(frozen=True, slots=True)
class PortalSession:
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PortalClaims:
    organization_id: uuid.UUID
    return_url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PortalSubscription:
    """The organization's live (not canceled) subscription as the portal shows and manages it."""

    plan_id: uuid.UUID
    plan_name: str
    currency: str
    status: SubscriptionStatus
    billing_period: str
    current_period_end: datetime
    cancel_at_period_end: bool
    trial_ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class PortalView:
    organization_name: str
    subscription: PortalSubscription | None
    invoices: list[Invoice]
    payment_methods: list[PaymentMethod]


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
    BILLING_PUBLIC_URL when none is given."""
    secret = _secret(settings)
    return_url = clean_return_url(return_url if return_url is not None else settings.public_url)
    organization_id = actor.organization_id
    if organization_id is None:
        raise not_found("Organization", None)
    expires_at = (now + timedelta(minutes=settings.portal_session_minutes)).replace(microsecond=0)
    session_id = uuid.uuid4().hex
    token = jwt.encode(
        {
            "aud": AUDIENCE,
            "org": str(organization_id),
            "ret": return_url,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": session_id,
        },
        secret,
        algorithm="HS256",
    )
    async with db.write() as session:
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
    return PortalSession(url=f"{settings.public_url}/portal/{token}", expires_at=expires_at)


def read_portal_token(token: str, *, settings: Settings, now: datetime) -> PortalClaims:
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
    except (jwt.PyJWTError, ValueError, TypeError, BillingError):
        raise PortalTokenInvalid("This billing portal link is not valid.") from None
    if expires_at <= now:
        raise PortalTokenInvalid("This billing portal link has expired.")
    return PortalClaims(organization_id=organization_id, return_url=return_url, expires_at=expires_at)


async def live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> PortalSubscription | None:
    row = (
        await session.execute(
            select(Subscription, Plan.name, Plan.currency)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(
                Subscription.organization_id == organization_id,
                Subscription.status != SubscriptionStatus.CANCELED,
            )
        )
    ).first()
    if row is None:
        return None
    live, plan_name, currency = row
    return PortalSubscription(
        plan_id=live.plan_id,
        plan_name=plan_name,
        currency=currency,
        status=live.status,
        billing_period=live.billing_period.value,
        current_period_end=live.current_period_end,
        cancel_at_period_end=live.cancel_at_period_end,
        trial_ends_at=live.trial_ends_at,
    )


async def load_portal_view(db: Database, organization_id: uuid.UUID) -> PortalView:
    async with db.read() as session:
        organization_name = await session.scalar(
            select(Organization.name).where(Organization.id == organization_id)
        )
        if organization_name is None:
            raise PortalTokenInvalid("This billing portal link is not valid.")
        subscription = await live_subscription(session, organization_id)
        invoices = (
            await session.scalars(
                select(Invoice)
                .where(Invoice.organization_id == organization_id, Invoice.status != InvoiceStatus.DRAFT)
                .order_by(Invoice.created_at.desc(), Invoice.id.desc())
                .limit(INVOICES_SHOWN)
            )
        ).all()
        methods = (
            await session.scalars(
                select(PaymentMethod)
                .where(PaymentMethod.organization_id == organization_id)
                .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id)
            )
        ).all()
    return PortalView(
        organization_name=organization_name,
        subscription=subscription,
        invoices=list(invoices),
        payment_methods=list(methods),
    )
