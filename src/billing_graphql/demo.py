"""Demo data: an IDR catalog (Starter/Growth/Business, add-ons, coupons) and, apart, a USD pricing
table (Free/Pro/Team/Enterprise); four Indonesian customers on the IDR plans with three months of
history (``demo_story``: active, in trial, past due, canceled); one API key per role for the
``demo`` organization; and, for ``serve --demo``, a seller with its NPWP (``DEMO_SELLER``). Everything
is built through the services."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Addon, AddonUnit, ApiKey, Coupon, CouponDuration, DiscountKind, Plan
from billing_graphql.demo_story import (
    CUSTOMERS,
    DEMO_GAUGES,
    DEMO_HISTORY_DAYS,
    DEMO_HISTORY_MONTHS,
    DEMO_MESSAGES_SO_FAR,
    DEMO_ORGANIZATION_EXTERNAL_ID,
    play_stories,
)
from billing_graphql.domain.catalog import FEATURE_KEYS, FeatureSpec, LimitSpec
from billing_graphql.domain.roles import Role
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.catalog.addons import AddonSpec, create_addon
from billing_graphql.services.catalog.coupons import CouponSpec, create_coupon
from billing_graphql.services.catalog.plans import PlanSpec, create_plan
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.usage.partners import grant_partner_access
from billing_graphql.settings import Settings

__all__ = ["CUSTOMERS", "DEMO_GAUGES", "DEMO_HISTORY_DAYS", "DEMO_HISTORY_MONTHS", "DEMO_MESSAGES_SO_FAR",
           "DEMO_ORGANIZATION_EXTERNAL_ID", "DEMO_SELLER", "demo_seller_environment", "seed_demo"]

# The seller on the demo's documents (``serve --demo`` sets these unless BILLING_SELLER_* are set).
DEMO_SELLER = {
    "BILLING_SELLER_NAME": "PT Contoh Layanan Digital",
    "BILLING_SELLER_ADDRESS": "Jl. Jenderal Sudirman Kav. 52-53\\nJakarta Selatan 12190",
    "BILLING_SELLER_TAX_ID": "01.234.567.8-012.000",
}


def demo_seller_environment(environ: MutableMapping[str, str]) -> bool:
    """Put the demo seller into ``environ`` when none of BILLING_SELLER_NAME, _ADDRESS, _TAX_ID is
    set (a configured seller is kept whole). True when it did."""
    if any((environ.get(name) or "").strip() for name in DEMO_SELLER):
        return False
    environ.update(DEMO_SELLER)
    return True

_METRICS = ("agents", "contacts", "messages", "channels", "ai_agents", "integrations")
_FEATURES = FEATURE_KEYS


def _plan(
    slug: str, name: str, currency: str, monthly: str, per_agent: str, overage_message: str,
    included_agents: int, sort_order: int, limits: tuple[int | None, ...], features: tuple[bool, bool, bool],
    trial_days: int = 14,
) -> PlanSpec:
    """A demo plan; ``limits`` follow ``_METRICS`` and ``features`` follow ``_FEATURES``."""
    return PlanSpec(
        name=name,
        slug=slug,
        currency=currency,
        base_price_monthly=Decimal(monthly),
        per_agent_price=Decimal(per_agent),
        overage_message_price=Decimal(overage_message),
        included_agents=included_agents,
        sort_order=sort_order,
        trial_days=trial_days,
        limits=[LimitSpec(code, value) for code, value in zip(_METRICS, limits, strict=True)],
        features=[FeatureSpec(key, enabled) for key, enabled in zip(_FEATURES, features, strict=True)],
    )


PLANS = [
    _plan("free", "Free", "USD", "0", "0", "0", 1, 0, (1, 100, 1000, 1, 0, 1), (False, False, False), trial_days=0),
    _plan("pro", "Pro", "USD", "29.00", "9.00", "0.01", 3, 1, (10, 5000, 50000, 5, 1, 5), (True, True, False)),
    _plan("team", "Team", "USD", "99.00", "7.00", "0.01", 10, 2, (50, 50000, 500000, 20, 5, 20), (True, True, False)),
    _plan("enterprise", "Enterprise", "USD", "299.00", "5.00", "0.01", 25, 3, (None,) * 6, (True, True, True)),
    _plan("starter-idr", "Starter", "IDR", "299000", "50000", "150", 2, 10, (3, 1000, 10000, 2, 0, 2),
          (False, False, False), trial_days=0),
    _plan("growth-idr", "Growth", "IDR", "599000", "45000", "120", 5, 11, (10, 10000, 100000, 5, 2, 10),
          (True, True, False)),
    _plan("business-idr", "Business", "IDR", "1499000", "40000", "100", 15, 12,
          (None, 100000, 1000000, None, 10, None), (True, True, True)),
]

ADDONS = [
    AddonSpec(name="Extra agent", slug="extra-agent", currency="USD", price_monthly=Decimal("9.00"),
              unit=AddonUnit.PER_AGENT, description="One more seat.", sort_order=0),
    AddonSpec(name="Priority support", slug="priority-support", currency="USD", price_monthly=Decimal("49.00"),
              description="Answers within four business hours.", sort_order=1),
    AddonSpec(name="WhatsApp number", slug="whatsapp-number-idr", currency="IDR", price_monthly=Decimal("150000"),
              description="One more WhatsApp Business number.", sort_order=10),
    AddonSpec(name="AI credits", slug="ai-credits-idr", currency="IDR", price_monthly=Decimal("250000"),
              unit=AddonUnit.PER_AGENT, description="AI replies for every agent.", sort_order=11),
]

COUPONS = [
    CouponSpec(code="WELCOME10", name="Welcome: 10% off the first invoice", discount_type=DiscountKind.PERCENTAGE,
               percent_off=10),
    CouponSpec(code="LAUNCH50K", name="Rp 50,000 off for three months", discount_type=DiscountKind.FIXED,
               amount_off=Decimal("50000"), currency="IDR", duration=CouponDuration.REPEATING,
               duration_in_months=3, max_uses=100),
]


async def _seed_catalog(db: Database, now: datetime) -> int:
    """Create the demo plans, add-ons and coupons that are missing, through the catalog services."""
    async with db.read() as session:
        plans = set((await session.scalars(select(Plan.slug))).all())
        addons = set((await session.scalars(select(Addon.slug))).all())
        coupons = set((await session.scalars(select(Coupon.code))).all())
    created = 0
    for spec in PLANS:
        if spec.slug not in plans:
            await create_plan(db, None, spec, now=now)
            created += 1
    for addon in ADDONS:
        if addon.slug not in addons:
            await create_addon(db, None, addon, now=now)
            created += 1
    for coupon in COUPONS:
        if coupon.code not in coupons:
            await create_coupon(db, None, coupon, now=now)
            created += 1
    return created


def _demo_label(role: Role) -> str:
    return f"demo {role.value.lower()}"


async def _revoke_demo_keys(db: Database, organization_id, now: datetime) -> None:
    """Revoke the keys an earlier seeding made (a role's demo label, of the demo organization for
    the roles that have one), so that seeding again (``serve --demo`` restarted) does not pile them up."""
    from sqlalchemy import or_

    from billing_graphql.services.platform.api_keys import revoke_api_key
    from billing_graphql.services.platform.auth import forget_api_keys

    async with db.read() as session:
        ids = (await session.scalars(
            select(ApiKey.id).where(
                ApiKey.revoked_at.is_(None),
                or_(*(
                    (ApiKey.role == role) & (ApiKey.label == _demo_label(role)) & (
                        ApiKey.organization_id == organization_id if role.needs_organization
                        else ApiKey.organization_id.is_(None))
                    for role in Role
                )),
            )
        )).all()
    for key_id in ids:
        await revoke_api_key(db, None, key_id=key_id, now=now, settle=False)
    if ids:  # a gateway already serving this database stops taking them before seeding goes on
        await forget_api_keys(db, [], settle=True)


async def seed_demo(db: Database, now: datetime, settings: Settings | None = None) -> dict[Role, str]:
    """Create the demo catalog and the customers' organizations with their story if missing
    (``demo_story``), and fresh demo keys for the ``demo`` organization (returned; the PARTNER key
    is granted it). The demo keys of an earlier seeding are revoked: one live key per role."""
    settings = settings or Settings()
    await _seed_catalog(db, now)
    organization_id = await play_stories(db, now, settings, GatewayRegistry(settings))
    await _revoke_demo_keys(db, organization_id, now)
    keys: dict[Role, str] = {}
    for role in Role:
        key, plain = await create_api_key(
            db,
            None,
            role=role,
            organization_id=organization_id if role.needs_organization else None,
            label=_demo_label(role),
            now=now,
        )
        keys[role] = plain
        if role is Role.PARTNER:
            await grant_partner_access(db, None, api_key_id=key.id, organization_id=organization_id, now=now)
    return keys
