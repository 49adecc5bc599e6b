"""A super-admin builds the seed catalog through GraphQL; tenants see exactly its active part, in order."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from billing_graphql.db.models import AuditEvent, OutboxEvent
from billing_graphql.demo import seed_demo
from tests.helpers import T0

QUERIES = Path(__file__).resolve().parents[2] / "queries"


def operation(name: str) -> str:
    """The named operation from queries/ (admin/ or spa/)."""
    for folder in ("admin", "spa"):
        path = QUERIES / folder / f"{name}.graphql"
        if path.exists():
            return path.read_text()
    raise FileNotFoundError(name)


METRIC_CODES = ("agents", "contacts", "messages", "channels", "ai_agents", "integrations")


def plan_input(slug, name, currency, monthly, per_agent, overage, agents, limits, features, **extra):
    return {
        "slug": slug,
        "name": name,
        "currency": currency,
        "basePriceMonthly": monthly,
        "perAgentPrice": per_agent,
        "overageMessagePrice": overage,
        "includedAgents": agents,
        "limits": [{"metric": code, "limit": value} for code, value in zip(METRIC_CODES, limits, strict=True)],
        "features": [
            {"key": key, "enabled": enabled}
            for key, enabled in zip(("aiAgent", "apiAccess", "dedicatedSupport"), features, strict=True)
        ],
        **extra,
    }


# Seed 002's pricing table in USD, with explicit sort orders.
USD = [
    plan_input("free", "Free", "USD", "0", "0", "0", 1, (1, 100, 1000, 1, 0, 1), (False, False, False),
               sortOrder=0, trialDays=0),
    plan_input("pro", "Pro", "USD", "29.00", "9.00", "0.01", 3, (10, 5000, 50000, 5, 1, 5), (True, True, False),
               sortOrder=1),
    plan_input("team", "Team", "USD", "99.00", "7.00", "0.01", 10, (50, 50000, 500000, 20, 5, 20),
               (True, True, False), sortOrder=2),
    plan_input("enterprise", "Enterprise", "USD", "299.00", "5.00", "0.01", 25, (None,) * 6, (True, True, True),
               sortOrder=3),
]
# An IDR catalog on the defaults (currency IDR, sort order 0, 14 trial days), created out of
# price order: the display order comes from the monthly price.
IDR = [
    {k: v for k, v in plan_input("business-idr", "Business", "IDR", "1499000", "40000", "100", 15,
                                 (None, 100000, 1000000, None, 10, None), (True, True, True)).items()
     if k != "currency"},
    plan_input("starter-idr", "Starter", "IDR", "299000", "50000", "150", 2, (3, 1000, 10000, 2, 0, 2),
               (False, False, False)),
    plan_input("growth-idr", "Growth", "IDR", "599000", "45000", "120", 5, (10, 10000, 100000, 5, 2, 10),
               (True, True, False)),
]


async def _create(api, token, name, input):
    data = await api.ok(operation(name), {"input": input}, token=token)
    payload = next(iter(data.values()))
    assert payload["errors"] == [], payload["errors"]
    return payload


async def test_super_admin_builds_the_seed_catalog_and_tenants_see_its_active_part_in_order(api, db, keys):
    admin = keys.super_admin
    created = {}
    for spec in USD + IDR:
        created[spec["slug"]] = (await _create(api, admin, "CreatePlan", spec))["plan"]
    # Defaults: IDR, annual = 10 x monthly, sort order 0, active, 14 trial days.
    starter = created["starter-idr"]
    assert starter["currency"] == "IDR" and created["business-idr"]["currency"] == "IDR"
    assert starter["basePriceAnnual"] == {"amount": "2990000", "currency": "IDR", "formatted": "Rp 2,990,000"}
    assert (starter["sortOrder"], starter["isActive"], starter["trialDays"]) == (0, True, 14)
    pro = created["pro"]
    assert pro["basePriceMonthly"] == {"amount": "29.00", "currency": "USD", "formatted": "$29.00"}
    assert pro["basePriceAnnual"]["amount"] == "290.00"
    assert pro["overageMessagePrice"]["amount"] == "0.01"
    assert {"metric": {"code": "agents"}, "limit": 10} in pro["limits"]
    assert created["free"]["trialDays"] == 0

    # A retired plan and a retired add-on: the super-admin sees them, tenants do not.
    legacy = (await _create(api, admin, "CreatePlan",
                            {"slug": "legacy", "name": "Legacy", "currency": "USD", "basePriceMonthly": "5.00"}))
    retired = await api.ok(operation("UpdatePlan"), {"input": {"id": legacy["plan"]["id"], "isActive": False}},
                           token=admin)
    assert retired["updatePlan"]["plan"]["isActive"] is False
    assert retired["updatePlan"]["plan"]["basePriceMonthly"]["amount"] == "5.00"  # left out: kept

    addons = [
        ({"slug": "extra-agent", "name": "Extra agent", "currency": "USD", "priceMonthly": "9.00",
          "unit": "PER_AGENT"}, "90.00"),
        ({"slug": "priority-support", "name": "Priority support", "currency": "USD", "priceMonthly": "49.00",
          "sortOrder": 1}, "490.00"),
        ({"slug": "whatsapp-number", "name": "WhatsApp number", "priceMonthly": "150000", "sortOrder": 10},
         "1500000"),
        ({"slug": "old-addon", "name": "Old add-on", "priceMonthly": "1000", "isActive": False}, "10000"),
    ]
    for spec, annual in addons:
        addon = (await _create(api, admin, "CreateAddon", spec))["addon"]
        assert addon["priceAnnual"]["amount"] == annual
        assert addon["currency"] == spec.get("currency", "IDR")
        assert addon["unit"] == spec.get("unit", "FLAT")
    coupon = (await _create(api, admin, "CreateCoupon", {
        "code": "launch50k", "discountType": "FIXED", "discountValue": "50000", "currency": "IDR",
        "duration": "REPEATING", "durationInMonths": 3, "maxUses": 100,
        "applicablePlanIds": [created["growth-idr"]["id"], created["business-idr"]["id"]],
    }))["coupon"]
    assert coupon["code"] == "LAUNCH50K"
    assert {p["slug"] for p in coupon["applicablePlans"]} == {"growth-idr", "business-idr"}
    await _create(api, admin, "CreateCoupon", {"code": "WELCOME10", "discountType": "PERCENTAGE", "discountValue": "10"})

    # The tenant's pricing page: active plans by sort order then monthly price, active add-ons.
    page = await api.ok(operation("PricingPage"), token=keys.member)
    # Sort order 0 holds Free (0) and the IDR plans (by price); then Pro, Team, Enterprise.
    assert [p["slug"] for p in page["plans"]] == [
        "free", "starter-idr", "growth-idr", "business-idr", "pro", "team", "enterprise",
    ]
    by_slug = {p["slug"]: p for p in page["plans"]}
    assert "legacy" not in by_slug
    assert by_slug["team"]["maxAgents"] == 50 and by_slug["team"]["maxMessagesMonth"] == 500000
    assert by_slug["enterprise"]["maxContacts"] is None and by_slug["enterprise"]["dedicatedSupport"] is True
    assert by_slug["business-idr"]["maxAiAgents"] == 10 and by_slug["business-idr"]["maxChannels"] is None
    assert (by_slug["pro"]["aiAgent"], by_slug["pro"]["apiAccess"], by_slug["pro"]["dedicatedSupport"]) == (
        True, True, False,
    )
    assert [a["slug"] for a in page["addons"]] == ["extra-agent", "priority-support", "whatsapp-number"]

    idr = await api.ok(operation("PricingPage"), {"currency": "IDR"}, token=keys.owner)
    assert [p["slug"] for p in idr["plans"]] == ["starter-idr", "growth-idr", "business-idr"]
    assert [a["slug"] for a in idr["addons"]] == ["whatsapp-number"]

    # The super-admin's screens hold everything.
    catalog = await api.ok(operation("CatalogPlans"), token=admin)
    assert {p["slug"] for p in catalog["plans"]} == set(created) | {"legacy"}
    assert [m["code"] for m in catalog["metrics"]] == sorted(
        ["agents", "contacts", "messages", "channels", "ai_agents", "integrations", "api_calls"]
    )
    all_addons = await api.ok(operation("CatalogAddons"), token=admin)
    assert len(all_addons["addons"]) == 4
    coupons = await api.ok(operation("Coupons"), token=admin)
    assert [edge["node"]["code"] for edge in coupons["coupons"]["edges"]] == ["WELCOME10", "LAUNCH50K"]

    # Every create and update left one audit row and one outbox event, in order.
    async with db.read() as session:
        actions = (await session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_type.in_(["Plan", "Addon", "Coupon"]))
        )).all()
        events = (await session.scalars(select(OutboxEvent.event_type).where(OutboxEvent.organization_id.is_(None)))).all()
    assert sorted(actions) == sorted(
        ["plan.created"] * 8 + ["plan.updated"] + ["addon.created"] * 4 + ["coupon.created"] * 2
    )
    assert sorted(events) == sorted(actions)


async def test_display_order_is_sort_order_then_monthly_price(api, keys):
    admin = keys.super_admin
    for slug, price, order in [("c", "300", 1), ("a", "100", 2), ("b", "200", 1), ("d", "50", 2), ("e", "999", 0)]:
        await _create(api, admin, "CreatePlan", {"slug": slug, "name": slug.upper(), "basePriceMonthly": price,
                                                 "sortOrder": order})
    page = await api.ok(operation("PricingPage"), token=keys.member)
    assert [p["slug"] for p in page["plans"]] == ["e", "b", "c", "d", "a"]


async def test_seed_demo_builds_its_catalog_through_the_services_once(api, db, keys):
    await seed_demo(db, T0)
    await seed_demo(db, T0)  # idempotent: nothing created twice
    page = await api.ok(operation("PricingPage"), token=keys.member)
    assert [p["slug"] for p in page["plans"]] == [
        "free", "pro", "team", "enterprise", "starter-idr", "growth-idr", "business-idr",
    ]
    growth = next(p for p in page["plans"] if p["slug"] == "growth-idr")
    assert growth["basePriceAnnual"]["amount"] == "5990000"
    assert (growth["maxAgents"], growth["maxAiAgents"], growth["aiAgent"]) == (10, 2, True)
    assert {a["slug"] for a in page["addons"]} >= {"extra-agent", "whatsapp-number-idr"}
    async with db.read() as session:
        created = (await session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "system"))).all()
    assert created.count("plan.created") == 7
    assert created.count("coupon.created") == 2
