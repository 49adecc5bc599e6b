"""Every catalog validation rule over GraphQL: its error code, its field, and nothing written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from billing_graphql.db.models import (
    Addon,
    AuditEvent,
    Coupon,
    CouponPlan,
    DiscountKind,
    Metric,
    OutboxEvent,
    Plan,
    PlanCharge,
    PlanFeature,
    PlanLimit,
    PlanVersion,
)
from billing_graphql.domain.catalog import LimitSpec
from billing_graphql.services.catalog.addons import AddonSpec, create_addon
from billing_graphql.services.catalog.coupons import CouponSpec, create_coupon
from billing_graphql.services.catalog.plans import PlanSpec, create_plan
from tests.helpers import T0, gid

TABLES = (Plan, PlanLimit, PlanFeature, PlanCharge, PlanVersion, Addon, Coupon, CouponPlan, Metric, AuditEvent, OutboxEvent)

MUTATIONS = {
    "createPlan": "mutation($input: CreatePlanInput!) { createPlan(input: $input) { plan { id } errors { code message field } } }",
    "updatePlan": "mutation($input: UpdatePlanInput!) { updatePlan(input: $input) { plan { id } errors { code message field } } }",
    "createAddon": "mutation($input: CreateAddonInput!) { createAddon(input: $input) { addon { id } errors { code message field } } }",
    "updateAddon": "mutation($input: UpdateAddonInput!) { updateAddon(input: $input) { addon { id } errors { code message field } } }",
    "createCoupon": "mutation($input: CreateCouponInput!) { createCoupon(input: $input) { coupon { id } errors { code message field } } }",
    "updateCoupon": "mutation($input: UpdateCouponInput!) { updateCoupon(input: $input) { coupon { id } errors { code message field } } }",
    "createMetric": "mutation($input: CreateMetricInput!) { createMetric(input: $input) { metric { code } errors { code message field } } }",
}


@dataclass
class Catalog:
    idr_plan: str  # global IDs
    usd_plan: str
    addon: str
    coupon: str  # PERCENTAGE 20%, valid from 2030-01-01, redeemed 3 times of at most 10


@pytest.fixture
async def catalog(db) -> Catalog:
    idr = await create_plan(db, None, PlanSpec(name="Base", slug="base", base_price_monthly=Decimal("299000"),
                                               limits=[LimitSpec("agents", 3)]), now=T0)
    usd = await create_plan(db, None, PlanSpec(name="Pro", slug="pro", currency="USD",
                                               base_price_monthly=Decimal("29.00")), now=T0)
    addon = await create_addon(db, None, AddonSpec(name="Seat", slug="seat", price_monthly=Decimal("50000")), now=T0)
    coupon = await create_coupon(
        db, None,
        CouponSpec(code="SAVE20", discount_type=DiscountKind.PERCENTAGE, percent_off=20, max_uses=10,
                   valid_from=T0.replace(year=2030)),
        now=T0,
    )
    async with db.write() as session:  # as redemption would have left it
        await session.execute(update(Coupon).where(Coupon.id == coupon.id).values(current_uses=3))
    return Catalog(gid("Plan", idr.id), gid("Plan", usd.id), gid("Addon", addon.id), gid("Coupon", coupon.id))


async def row_counts(db) -> dict[str, int]:
    async with db.read() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model)) for model in TABLES
        }


PLAN = {"name": "New", "slug": "new", "basePriceMonthly": "100000"}


def GRADUATED(*bounds):  # noqa: N802 - reads as the model it builds
    """A GRADUATED charge on messages with tiers ending at ``bounds`` (Rp 10 a unit each)."""
    return {"metric": "messages", "model": "GRADUATED",
            "tiers": [{"upTo": bound, "unitAmount": "10"} for bound in bounds]}
USD_PLAN = {**PLAN, "currency": "USD", "basePriceMonthly": "10.00"}
ADDON = {"name": "Extra", "slug": "extra", "priceMonthly": "1000"}
PERCENT = {"code": "NEW10", "discountType": "PERCENTAGE", "discountValue": "10"}
FIXED = {"code": "NEW5", "discountType": "FIXED", "discountValue": "5.00", "currency": "USD"}
FUTURE = "2100-01-01T00:00:00Z"


def case(id, mutation, input, code, field):
    return pytest.param(mutation, input, code, field, id=id)


CASES = [
    # -- plans
    case("price-beyond-idr-exponent", "createPlan", {**PLAN, "basePriceMonthly": "10.5"}, "VALIDATION", "basePriceMonthly"),
    case("price-beyond-usd-exponent", "createPlan", {**USD_PLAN, "perAgentPrice": "0.001"}, "VALIDATION", "perAgentPrice"),
    case("negative-monthly", "createPlan", {**PLAN, "basePriceMonthly": "-1"}, "VALIDATION", "basePriceMonthly"),
    case("negative-annual", "createPlan", {**PLAN, "basePriceAnnual": "-100"}, "VALIDATION", "basePriceAnnual"),
    case("negative-overage", "createPlan", {**USD_PLAN, "overageMessagePrice": "-0.01"}, "VALIDATION",
         "overageMessagePrice"),
    case("absurd-price", "createPlan", {**PLAN, "basePriceMonthly": "10000000000000000"}, "VALIDATION",
         "basePriceMonthly"),
    case("unknown-currency", "createPlan", {**PLAN, "currency": "XYZ"}, "VALIDATION", "currency"),
    case("empty-name", "createPlan", {**PLAN, "name": "   "}, "VALIDATION", "name"),
    case("slug-upper-case", "createPlan", {**PLAN, "slug": "New-Plan"}, "VALIDATION", "slug"),
    case("slug-with-space", "createPlan", {**PLAN, "slug": "new plan"}, "VALIDATION", "slug"),
    case("slug-taken", "createPlan", {**PLAN, "slug": "base"}, "ALREADY_EXISTS", "slug"),
    case("unknown-metric", "createPlan",
         {**PLAN, "limits": [{"metric": "agents", "limit": 1}, {"metric": "seats", "limit": 2}]},
         "VALIDATION", "limits[1].metric"),
    case("metric-twice", "createPlan",
         {**PLAN, "limits": [{"metric": "agents", "limit": 1}, {"metric": "agents", "limit": 2}]},
         "VALIDATION", "limits[1].metric"),
    case("negative-limit", "createPlan", {**PLAN, "limits": [{"metric": "contacts", "limit": -5}]},
         "VALIDATION", "limits[0].limit"),
    case("bad-feature-key", "createPlan", {**PLAN, "features": [{"key": "ai agent"}]}, "VALIDATION", "features[0].key"),
    case("trial-too-long", "createPlan", {**PLAN, "trialDays": 731}, "VALIDATION", "trialDays"),
    case("negative-trial", "createPlan", {**PLAN, "trialDays": -1}, "VALIDATION", "trialDays"),
    case("negative-included-agents", "createPlan", {**PLAN, "includedAgents": -1}, "VALIDATION", "includedAgents"),
    case("update-unknown-plan", "updatePlan", {"id": gid("Plan", uuid.UUID(int=7)), "name": "X"},
         "PLAN_NOT_FOUND", "id"),
    case("update-id-of-other-type", "updatePlan", {"id": "@addon", "name": "X"}, "PLAN_NOT_FOUND", "id"),
    case("update-price-beyond-exponent", "updatePlan", {"id": "@idr_plan", "basePriceMonthly": "10.5"},
         "VALIDATION", "basePriceMonthly"),
    case("update-null-name", "updatePlan", {"id": "@idr_plan", "name": None}, "VALIDATION", "name"),
    case("update-bad-slug", "updatePlan", {"id": "@idr_plan", "slug": "-base"}, "VALIDATION", "slug"),
    case("update-slug-taken", "updatePlan", {"id": "@idr_plan", "slug": "pro"}, "ALREADY_EXISTS", "slug"),
    case("update-currency-alone", "updatePlan", {"id": "@idr_plan", "currency": "USD"}, "VALIDATION", "currency"),
    case("update-unknown-metric", "updatePlan", {"id": "@idr_plan", "limits": [{"metric": "seats", "limit": 1}]},
         "VALIDATION", "limits[0].metric"),
    case("update-negative-price-after-good-ones", "updatePlan",
         {"id": "@usd_plan", "name": "Renamed", "perAgentPrice": "-1.00"}, "VALIDATION", "perAgentPrice"),
    # -- metrics
    case("metric-bad-code", "createMetric", {"code": "Voice Minutes", "name": "Voice", "kind": "COUNTER"},
         "VALIDATION", "code"),
    case("metric-code-taken", "createMetric", {"code": "agents", "name": "Agents", "kind": "GAUGE"},
         "ALREADY_EXISTS", "code"),
    case("metric-empty-name", "createMetric", {"code": "voice_minutes", "name": "", "kind": "COUNTER"},
         "VALIDATION", "name"),
    # -- add-ons
    case("addon-price-beyond-exponent", "createAddon", {**ADDON, "priceMonthly": "10.5"}, "VALIDATION", "priceMonthly"),
    case("addon-negative-annual", "createAddon", {**ADDON, "priceAnnual": "-1"}, "VALIDATION", "priceAnnual"),
    case("addon-unknown-currency", "createAddon", {**ADDON, "currency": "RUPIAH"}, "VALIDATION", "currency"),
    case("addon-bad-slug", "createAddon", {**ADDON, "slug": "extra_seat"}, "VALIDATION", "slug"),
    case("addon-slug-taken", "createAddon", {**ADDON, "slug": "seat"}, "ALREADY_EXISTS", "slug"),
    case("addon-empty-name", "createAddon", {**ADDON, "name": ""}, "VALIDATION", "name"),
    case("update-unknown-addon", "updateAddon", {"id": gid("Addon", uuid.UUID(int=9)), "name": "X"},
         "ADDON_NOT_FOUND", "id"),
    case("update-addon-price-beyond-exponent", "updateAddon", {"id": "@addon", "priceAnnual": "0.5"},
         "VALIDATION", "priceAnnual"),
    case("update-addon-currency-alone", "updateAddon", {"id": "@addon", "currency": "USD"}, "VALIDATION", "currency"),
    # -- coupons
    case("percent-zero", "createCoupon", {**PERCENT, "discountValue": "0"}, "VALIDATION", "discountValue"),
    case("percent-over-100", "createCoupon", {**PERCENT, "discountValue": "101"}, "VALIDATION", "discountValue"),
    case("percent-not-whole", "createCoupon", {**PERCENT, "discountValue": "12.5"}, "VALIDATION", "discountValue"),
    case("fixed-without-currency", "createCoupon", {**FIXED, "currency": None}, "VALIDATION", "currency"),
    case("fixed-amount-zero", "createCoupon", {**FIXED, "discountValue": "0"}, "VALIDATION", "discountValue"),
    case("fixed-amount-beyond-exponent", "createCoupon", {**FIXED, "discountValue": "10.5", "currency": "IDR"},
         "VALIDATION", "discountValue"),
    case("fixed-unknown-currency", "createCoupon", {**FIXED, "currency": "ABC"}, "VALIDATION", "currency"),
    case("until-before-from", "createCoupon",
         {**PERCENT, "validFrom": "2030-01-02T00:00:00Z", "validUntil": "2030-01-01T00:00:00Z"},
         "VALIDATION", "validUntil"),
    case("until-equals-from", "createCoupon",
         {**PERCENT, "validFrom": "2030-01-02T00:00:00Z", "validUntil": "2030-01-02T00:00:00Z"},
         "VALIDATION", "validUntil"),
    case("until-in-the-past", "createCoupon", {**PERCENT, "validUntil": "2000-01-01T00:00:00Z"},
         "VALIDATION", "validUntil"),
    case("unknown-plan", "createCoupon",
         {**PERCENT, "applicablePlanIds": ["@idr_plan", gid("Plan", uuid.UUID(int=5))]},
         "VALIDATION", "applicablePlanIds[1]"),
    case("plan-id-of-other-type", "createCoupon", {**PERCENT, "applicablePlanIds": ["@addon"]},
         "VALIDATION", "applicablePlanIds[0]"),
    case("repeating-without-months", "createCoupon", {**PERCENT, "duration": "REPEATING"},
         "VALIDATION", "durationInMonths"),
    case("once-with-months", "createCoupon", {**PERCENT, "duration": "ONCE", "durationInMonths": 3},
         "VALIDATION", "durationInMonths"),
    case("max-uses-zero", "createCoupon", {**PERCENT, "maxUses": 0}, "VALIDATION", "maxUses"),
    case("bad-code", "createCoupon", {**PERCENT, "code": "10% off"}, "VALIDATION", "code"),
    case("code-taken-whatever-the-case", "createCoupon", {**PERCENT, "code": "save20"}, "ALREADY_EXISTS", "code"),
    case("update-unknown-coupon", "updateCoupon", {"id": gid("Coupon", uuid.UUID(int=3)), "name": "X"},
         "NOT_FOUND", "id"),
    case("update-max-uses-below-redemptions", "updateCoupon", {"id": "@coupon", "maxUses": 2}, "VALIDATION", "maxUses"),
    case("update-terms-after-redemption", "updateCoupon", {"id": "@coupon", "discountValue": "30"},
         "VALIDATION", "discountValue"),
    case("update-code-after-redemption", "updateCoupon", {"id": "@coupon", "code": "SAVE30"}, "VALIDATION", "code"),
    case("update-until-before-stored-from", "updateCoupon", {"id": "@coupon", "validUntil": "2029-12-31T00:00:00Z"},
         "VALIDATION", "validUntil"),
    case("update-unknown-plan", "updateCoupon", {"id": "@coupon", "applicablePlanIds": [gid("Plan", uuid.uuid4())]},
         "VALIDATION", "applicablePlanIds[0]"),
    case("update-null-required-field", "updateCoupon", {"id": "@coupon", "isActive": None}, "VALIDATION", "isActive"),
    # -- usage charges (issue 20)
    case("tiers-not-increasing", "createPlan", {**PLAN, "charges": [GRADUATED(100, 100, None)]},
         "VALIDATION", "charges[0].tiers[1].upTo"),
    case("tiers-decreasing", "createPlan", {**PLAN, "charges": [GRADUATED(100, 50, None)]},
         "VALIDATION", "charges[0].tiers[1].upTo"),
    case("last-tier-bounded", "createPlan", {**PLAN, "charges": [GRADUATED(100, 200)]},
         "VALIDATION", "charges[0].tiers[1].upTo"),
    case("unbounded-tier-not-last", "createPlan", {**PLAN, "charges": [GRADUATED(None, 100, None)]},
         "VALIDATION", "charges[0].tiers[0].upTo"),
    case("tier-up-to-zero", "createPlan", {**PLAN, "charges": [GRADUATED(0, None)]},
         "VALIDATION", "charges[0].tiers[0].upTo"),
    case("no-tiers", "createPlan", {**PLAN, "charges": [{"metric": "messages", "model": "VOLUME"}]},
         "VALIDATION", "charges[0].tiers"),
    case("negative-unit-amount", "createPlan",
         {**PLAN, "charges": [{"metric": "messages", "model": "STANDARD", "unitAmount": "-1"}]},
         "VALIDATION", "charges[0].unitAmount"),
    case("negative-flat-amount", "createPlan",
         {**PLAN, "charges": [{"metric": "messages", "model": "VOLUME",
                               "tiers": [{"upTo": None, "unitAmount": "1", "flatAmount": "-5"}]}]},
         "VALIDATION", "charges[0].tiers[0].flatAmount"),
    case("tier-amount-too-precise", "createPlan",
         {**USD_PLAN, "charges": [{"metric": "api_calls", "model": "GRADUATED",
                                   "tiers": [{"upTo": None, "unitAmount": "0.000000001"}]}]},
         "VALIDATION", "charges[0].tiers[0].unitAmount"),
    case("standard-without-unit-amount", "createPlan", {**PLAN, "charges": [{"metric": "messages", "model": "STANDARD"}]},
         "VALIDATION", "charges[0].unitAmount"),
    case("package-without-size", "createPlan",
         {**PLAN, "charges": [{"metric": "api_calls", "model": "PACKAGE", "unitAmount": "700"}]},
         "VALIDATION", "charges[0].packageSize"),
    case("package-size-zero", "createPlan",
         {**PLAN, "charges": [{"metric": "api_calls", "model": "PACKAGE", "unitAmount": "700", "packageSize": 0}]},
         "VALIDATION", "charges[0].packageSize"),
    case("standard-with-tiers", "createPlan",
         {**PLAN, "charges": [{"metric": "messages", "model": "STANDARD", "unitAmount": "1",
                               "tiers": [{"upTo": None, "unitAmount": "1"}]}]},
         "VALIDATION", "charges[0].tiers"),
    case("graduated-with-unit-amount", "createPlan",
         {**PLAN, "charges": [{**GRADUATED(None), "unitAmount": "1"}]}, "VALIDATION", "charges[0].unitAmount"),
    case("negative-included-units", "createPlan",
         {**PLAN, "charges": [{"metric": "messages", "model": "STANDARD", "unitAmount": "1", "includedUnits": -1}]},
         "VALIDATION", "charges[0].includedUnits"),
    case("charge-unknown-metric", "createPlan",
         {**PLAN, "charges": [{"metric": "minutes", "model": "STANDARD", "unitAmount": "1"}]},
         "VALIDATION", "charges[0].metric"),
    case("charge-metric-twice", "createPlan",
         {**PLAN, "charges": [GRADUATED(None), {"metric": "messages", "model": "STANDARD", "unitAmount": "1"}]},
         "VALIDATION", "charges[1].metric"),
    case("charges-and-overage-price", "createPlan", {**PLAN, "overageMessagePrice": "100", "charges": [GRADUATED(None)]},
         "VALIDATION", "overageMessagePrice"),
    case("update-bad-tiers", "updatePlan", {"id": "@idr_plan", "charges": [GRADUATED(10, 5, None)]},
         "VALIDATION", "charges[0].tiers[1].upTo"),
    case("update-charges-and-overage-price", "updatePlan",
         {"id": "@idr_plan", "overageMessagePrice": "100", "charges": []}, "VALIDATION", "overageMessagePrice"),
    case("update-null-charges", "updatePlan", {"id": "@idr_plan", "charges": None}, "VALIDATION", "charges"),
]


def _substitute(value, catalog: Catalog):
    if isinstance(value, str) and value.startswith("@"):
        return getattr(catalog, value[1:])
    if isinstance(value, dict):
        return {key: _substitute(item, catalog) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, catalog) for item in value]
    return value


@pytest.mark.parametrize("mutation,input,code,field", CASES)
async def test_rule_is_an_error_with_its_field_and_writes_nothing(api, db, keys, catalog, mutation, input, code, field):
    before = await row_counts(db)
    data = await api.ok(MUTATIONS[mutation], {"input": _substitute(input, catalog)}, token=keys.super_admin)
    payload = data[mutation]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [(code, field)], payload["errors"]
    assert payload["errors"][0]["message"]
    assert next(value for key, value in payload.items() if key != "errors") is None
    assert await row_counts(db) == before


async def test_current_uses_is_not_writable(api, db, keys, catalog):
    before = await row_counts(db)
    for mutation, input in [
        ("createCoupon", {**PERCENT, "currentUses": 5}),
        ("updateCoupon", {"id": catalog.coupon, "currentUses": 0}),
    ]:
        result = await api.post(MUTATIONS[mutation], {"input": input}, token=keys.super_admin)
        assert result.get("data") is None
        assert "currentUses" in result["errors"][0]["message"]
    assert await row_counts(db) == before
    async with db.read() as session:
        assert await session.scalar(select(Coupon.current_uses).where(Coupon.code == "SAVE20")) == 3


async def test_decimal_amounts_must_be_strings(api, db, keys):
    before = await row_counts(db)
    result = await api.post(MUTATIONS["createPlan"], {"input": {**PLAN, "basePriceMonthly": 10.5}},
                            token=keys.super_admin)
    assert result.get("data") is None and "string" in result["errors"][0]["message"]
    assert await row_counts(db) == before
