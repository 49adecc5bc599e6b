"""Demo data: a USD pricing table (Free/Pro/Team/Enterprise), an IDR catalog, add-ons and coupons,
a demo organization and one API key per role. The catalog is built through the catalog services."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    ApiKey,
    AddonUnit,
    Coupon,
    CouponDuration,
    DiscountKind,
    Organization,
    PaymentMethodType,
    Plan,
    Subscription,
    UsageEvent,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.catalog import FEATURE_KEYS, FeatureSpec, LimitSpec
from billing_graphql.domain.roles import Role
from billing_graphql.services.catalog.addons import AddonSpec, create_addon
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.catalog.coupons import CouponSpec, create_coupon
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.payments.payment_methods import NewPaymentMethod, add_payment_method
from billing_graphql.services.subscriptions.plan_changes import change_plan
from billing_graphql.services.catalog.plans import PlanSpec, create_plan, list_plans
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.usage.ingest import record_usage
from billing_graphql.services.usage.partners import grant_partner_access
from billing_graphql.domain.usage import EventInput
from billing_graphql.settings import Settings

DEMO_ORGANIZATION_EXTERNAL_ID = "demo"

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


DEMO_HISTORY = timedelta(days=14)


async def _seed_subscription(db: Database, organization_id, now: datetime, gateways: GatewayRegistry) -> None:
    """A card on file and a live subscription built as a customer would build it: Starter (IDR,
    no trial) subscribed 14 days ago and paid, then upgraded to Growth now, the unused half of
    the paid Starter month credited and Growth charged for the same rest of the period."""
    async with db.read() as session:
        has_subscription = await session.scalar(
            select(Subscription.id).where(Subscription.organization_id == organization_id)
        )
    if has_subscription is not None:
        return
    owner = Actor(role=Role.OWNER, organization_id=organization_id, subject="system:demo")
    started_at = now - DEMO_HISTORY
    await add_payment_method(
        db,
        owner,
        NewPaymentMethod(gateway="sandbox", gateway_payment_method_id="pm_card_visa",
                         type=PaymentMethodType.CREDIT_CARD, label="Visa ending 4242", is_default=True,
                         brand="visa", last4="4242", exp_month=12, exp_year=now.year + 3),
        now=started_at,
    )
    plans = await list_plans(db, include_inactive=False)
    by_slug = {plan.slug: plan.id for plan in plans}
    await subscribe(
        db, owner, organization_id=organization_id, choice=PlanChoice(by_slug["starter-idr"], BillingPeriod.MONTHLY),
        payment_method_id=None,
        idempotency_key=None, gateways=gateways, now=started_at,
    )
    await change_plan(db, owner, organization_id=organization_id, plan_id=by_slug["growth-idr"],
                      billing_period=None, gateways=gateways, now=now)


# The demo organization's current counts (GAUGEs) and its daily traffic (COUNTERs).
DEMO_GAUGES = {"agents": 8, "contacts": 12_480, "channels": 3, "ai_agents": 2, "integrations": 4}
DEMO_DAILY = {"messages": 3_200, "api_calls": 1_450}


async def _seed_usage(db: Database, organization_id, now: datetime) -> None:
    """A month of usage, once: a day's messages and API calls for each of the last 30 days (a
    weekday/weekend rhythm, in four events a day), today's so far, and the current gauges."""
    async with db.read() as session:
        if await session.scalar(select(UsageEvent.id).where(UsageEvent.organization_id == organization_id).limit(1)):
            return
    events: list[EventInput] = []
    for days_ago in range(30, -1, -1):
        day = now - timedelta(days=days_ago)
        factor = 0.45 if day.weekday() >= 5 else 1.0 + (days_ago % 7) / 20
        for metric, per_day in DEMO_DAILY.items():
            for quarter in range(4):
                at = min(day - timedelta(hours=6 * quarter), now)
                events.append(EventInput(metric, int(per_day * factor / 4), at, f"demo:{metric}:{days_ago}:{quarter}"))
    events += [EventInput(metric, value, now, f"demo:{metric}:now") for metric, value in DEMO_GAUGES.items()]
    await record_usage(db, organization_id=organization_id, events=events, now=now)


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
    """Create the demo catalog, organization, subscription and a month of usage if missing, and
    fresh demo keys (returned; the PARTNER key is granted the demo organization). The demo keys
    of an earlier seeding are revoked: one live key per role."""
    await _seed_catalog(db, now)
    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID)
        )
    if organization_id is None:
        organization = await create_organization(
            db, None, name="Demo Company", external_id=DEMO_ORGANIZATION_EXTERNAL_ID, now=now
        )
        organization_id = organization.id
    await _seed_subscription(db, organization_id, now, GatewayRegistry(settings or Settings()))
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
    await _seed_usage(db, organization_id, now)
    return keys
