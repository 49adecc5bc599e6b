"""Who sees and changes the catalog: super-admins write and see everything; tenants see the
active catalog and check coupon codes without learning anything about other coupons."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
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
    PlanFeature,
    PlanLimit,
)
from billing_graphql.services.catalog.addons import AddonSpec, create_addon
from billing_graphql.services.catalog.coupons import CouponSpec, create_coupon
from billing_graphql.services.catalog.plans import PlanSpec, create_plan
from tests.helpers import T0, gid

TABLES = (Plan, PlanLimit, PlanFeature, Addon, Coupon, CouponPlan, Metric, AuditEvent, OutboxEvent)

WRITES = {
    "createPlan": ("CreatePlanInput", {"name": "X", "slug": "x", "basePriceMonthly": "1"}),
    "updatePlan": ("UpdatePlanInput", {"id": "@plan", "name": "Hacked"}),
    "createAddon": ("CreateAddonInput", {"name": "X", "slug": "x", "priceMonthly": "1"}),
    "updateAddon": ("UpdateAddonInput", {"id": "@addon", "isActive": False}),
    "createCoupon": ("CreateCouponInput", {"code": "FREE100", "discountType": "PERCENTAGE", "discountValue": "100"}),
    "updateCoupon": ("UpdateCouponInput", {"id": "@coupon", "maxUses": 1000}),
    "createMetric": ("CreateMetricInput", {"code": "x", "name": "X", "kind": "GAUGE"}),
}


async def row_counts(db) -> dict[str, int]:
    async with db.read() as session:
        return {m.__tablename__: await session.scalar(select(func.count()).select_from(m)) for m in TABLES}


@pytest.fixture
async def catalog(db):
    pro = await create_plan(db, None, PlanSpec(name="Pro", slug="pro", currency="USD",
                                               base_price_monthly=Decimal("29.00")), now=T0)
    basic = await create_plan(db, None, PlanSpec(name="Basic", slug="basic", currency="USD",
                                                 base_price_monthly=Decimal("9.00")), now=T0)
    retired = await create_plan(db, None, PlanSpec(name="Old", slug="old", currency="USD", is_active=False,
                                                   base_price_monthly=Decimal("5.00")), now=T0)
    idr = await create_plan(db, None, PlanSpec(name="Starter", slug="starter", base_price_monthly=Decimal("299000")),
                            now=T0)
    addon = await create_addon(db, None, AddonSpec(name="Seat", slug="seat", price_monthly=Decimal("1000")), now=T0)
    hidden_addon = await create_addon(db, None, AddonSpec(name="Gone", slug="gone", price_monthly=Decimal("1000"),
                                                          is_active=False), now=T0)
    coupon = await create_coupon(db, None, CouponSpec(code="PRO20", discount_type=DiscountKind.PERCENTAGE,
                                                      percent_off=20, plan_ids=[pro.id], max_uses=50), now=T0)
    return {
        "plan": gid("Plan", pro.id), "basic": gid("Plan", basic.id), "retired": gid("Plan", retired.id),
        "idr": gid("Plan", idr.id), "addon": gid("Addon", addon.id), "hidden_addon": gid("Addon", hidden_addon.id),
        "coupon": gid("Coupon", coupon.id), "coupon_id": coupon.id,
    }


def _input(input, catalog):
    return {key: catalog[value[1:]] if isinstance(value, str) and value.startswith("@") else value
            for key, value in input.items()}


@pytest.mark.parametrize("mutation", sorted(WRITES))
async def test_only_super_admins_write_the_catalog(api, db, keys, catalog, mutation):
    input_type, input = WRITES[mutation]
    query = f"mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ errors {{ code }} }} }}"
    before = await row_counts(db)
    for token in (keys.owner, keys.admin, keys.member, keys.partner, keys.other_owner):
        result = await api.post(query, {"input": _input(input, catalog)}, token=token)
        assert result["data"] == {mutation: None}
        assert [error["extensions"]["code"] for error in result["errors"]] == ["FORBIDDEN"]
    anonymous = await api.post(query, {"input": _input(input, catalog)})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await row_counts(db) == before
    allowed = await api.ok(query, {"input": _input(input, catalog)}, token=keys.super_admin)
    assert allowed[mutation]["errors"] == []
    assert (await row_counts(db))["audit_events"] == before["audit_events"] + 1


@pytest.mark.parametrize("field", ["plans", "addons"])
async def test_inactive_listings_are_for_super_admins(api, keys, catalog, field):
    query = f"{{ {field}(includeInactive: true) {{ slug isActive }} }}"
    for token in (keys.owner, keys.admin, keys.member, keys.partner):
        result = await api.post(query, token=token)
        assert result["data"] == {field: None}
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    everything = (await api.ok(query, token=keys.super_admin))[field]
    assert any(not item["isActive"] for item in everything)
    active = (await api.ok(f"{{ {field} {{ slug isActive }} }}", token=keys.member))[field]
    assert active and all(item["isActive"] for item in active)
    assert len(active) < len(everything)


async def test_tenants_see_the_active_catalog_only(api, keys, catalog):
    plans = (await api.ok("{ plans { slug } }", token=keys.member))["plans"]
    assert [p["slug"] for p in plans] == ["basic", "pro", "starter"]
    assert (await api.ok('{ plan(slug: "old") { slug } }', token=keys.owner))["plan"] is None
    assert (await api.ok('{ plan(slug: "old") { slug } }', token=keys.super_admin))["plan"] == {"slug": "old"}
    node = "query($id: ID!) { node(id: $id) { id } }"
    for hidden in ("retired", "hidden_addon", "coupon"):
        assert (await api.ok(node, {"id": catalog[hidden]}, token=keys.owner))["node"] is None, hidden
        assert (await api.ok(node, {"id": catalog[hidden]}, token=keys.super_admin))["node"] == {"id": catalog[hidden]}
    assert (await api.ok(node, {"id": catalog["addon"]}, token=keys.member))["node"] == {"id": catalog["addon"]}
    usd = (await api.ok('{ plans(currency: "usd") { slug } }', token=keys.member))["plans"]
    assert [p["slug"] for p in usd] == ["basic", "pro"]
    bad = await api.post('{ plans(currency: "XYZ") { slug } }', token=keys.member)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_partners_see_neither_plans_nor_addons(api, keys, catalog):
    # Partner keys read usageSnapshots and nothing else (issue 9).
    for field in ("plans", "addons", "metrics"):
        result = await api.post(f"{{ {field} {{ __typename }} }}", token=keys.partner)
        assert result["data"] == {field: None}
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_coupon_listing_is_for_super_admins(api, keys, catalog):
    for token in (keys.owner, keys.admin, keys.member, keys.partner):
        result = await api.post("{ coupons { edges { node { code } } } }", token=token)
        assert result["data"] == {"coupons": None}
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_metrics_are_listed_for_everyone_authenticated(api, keys):
    metrics = (await api.ok("{ metrics { code kind unit } }", token=keys.member))["metrics"]
    assert {"code": "messages", "kind": "COUNTER", "unit": "message"} in metrics
    assert {"code": "agents", "kind": "GAUGE", "unit": "agent"} in metrics
    created = await api.ok(
        'mutation { createMetric(input: {code: "voice_minutes", name: "Voice minutes", kind: COUNTER, unit: "minute"})'
        " { metric { code kind unit } errors { code } } }",
        token=keys.super_admin,
    )
    assert created["createMetric"] == {
        "metric": {"code": "voice_minutes", "kind": "COUNTER", "unit": "minute"}, "errors": [],
    }
    limited = await api.ok(
        'mutation { createPlan(input: {name: "Voice", slug: "voice", basePriceMonthly: "1000",'
        ' limits: [{metric: "voice_minutes", limit: 600}]}) { plan { limits { metric { code kind } limit } } errors { code } } }',
        token=keys.super_admin,
    )
    assert limited["createPlan"]["plan"]["limits"] == [{"metric": {"code": "voice_minutes", "kind": "COUNTER"},
                                                        "limit": 600}]


# ------------------------------------------------------------------ coupon check

CHECK = """
query($code: String!, $planId: ID) {
  coupon(code: $code, planId: $planId) {
    code valid reason message
    coupon { code discountType discountValue duration durationInMonths validUntil }
  }
}
"""


async def _check(api, token, code, plan=None):
    return (await api.ok(CHECK, {"code": code, "planId": plan}, token=token))["coupon"]


async def test_a_valid_code_in_any_case_returns_its_discount(api, keys, catalog):
    check = await _check(api, keys.member, "  pro20 ", catalog["plan"])
    assert check == {
        "code": "PRO20", "valid": True, "reason": None, "message": "This coupon can be used.",
        "coupon": {"code": "PRO20", "discountType": "PERCENTAGE", "discountValue": "20",
                   "duration": "ONCE", "durationInMonths": None, "validUntil": None},
    }
    assert (await _check(api, keys.owner, "PRO20"))["valid"] is True  # no plan named: usable somewhere


async def test_a_coupon_for_other_plans_is_not_applicable(api, keys, catalog):
    check = await _check(api, keys.member, "PRO20", catalog["basic"])
    assert (check["valid"], check["reason"]) == (False, "COUPON_NOT_APPLICABLE")
    assert check["coupon"]["discountValue"] == "20"


async def test_a_fixed_coupon_in_another_currency_is_not_applicable(api, db, keys, catalog):
    await create_coupon(db, None, CouponSpec(code="USD5", discount_type=DiscountKind.FIXED,
                                             amount_off=Decimal("5"), currency="USD"), now=T0)
    assert (await _check(api, keys.member, "usd5", catalog["basic"]))["valid"] is True
    check = await _check(api, keys.member, "usd5", catalog["idr"])
    assert check["reason"] == "COUPON_NOT_APPLICABLE"
    assert check["coupon"]["discountValue"] == "5.00"


async def test_unknown_inactive_and_future_codes_look_exactly_alike(api, db, keys, catalog):
    far = datetime(2999, 1, 1, tzinfo=UTC)
    await create_coupon(db, None, CouponSpec(code="HIDDEN1", discount_type=DiscountKind.PERCENTAGE, percent_off=50,
                                             is_active=False), now=T0)
    await create_coupon(db, None, CouponSpec(code="HIDDEN2", discount_type=DiscountKind.PERCENTAGE, percent_off=50,
                                             valid_from=far), now=T0)
    answers = []
    for code in ("NOSUCHCODE", "HIDDEN1", "HIDDEN2", "x"):
        check = await _check(api, keys.member, code, catalog["plan"])
        answers.append({key: value for key, value in check.items() if key != "code"})
    assert answers == [
        {"valid": False, "reason": "COUPON_INVALID", "message": "This coupon code is not valid.", "coupon": None}
    ] * 4


async def test_expired_and_exhausted_coupons_say_so_without_their_discount(api, db, keys, catalog):
    await create_coupon(db, None, CouponSpec(code="OLD", discount_type=DiscountKind.PERCENTAGE, percent_off=5),
                        now=T0)
    await create_coupon(db, None, CouponSpec(code="FEW", discount_type=DiscountKind.PERCENTAGE, percent_off=5,
                                             max_uses=2), now=T0)
    async with db.write() as session:  # time passed, redemptions happened
        await session.execute(update(Coupon).where(Coupon.code == "OLD").values(
            valid_from=datetime(2020, 1, 1, tzinfo=UTC), valid_until=datetime(2020, 2, 1, tzinfo=UTC)))
        await session.execute(update(Coupon).where(Coupon.code == "FEW").values(current_uses=2))
    expired = await _check(api, keys.member, "old")
    assert (expired["reason"], expired["coupon"]) == ("COUPON_EXPIRED", None)
    exhausted = await _check(api, keys.member, "few")
    assert (exhausted["reason"], exhausted["coupon"]) == ("COUPON_EXHAUSTED", None)


async def test_checking_against_an_unknown_or_hidden_plan(api, keys, catalog):
    for plan in (gid("Plan", uuid.uuid4()), catalog["retired"], catalog["addon"]):
        check = await _check(api, keys.member, "PRO20", plan)
        assert (check["valid"], check["reason"]) == (False, "PLAN_NOT_FOUND")
    assert (await _check(api, keys.super_admin, "PRO20", catalog["retired"]))["reason"] == "COUPON_NOT_APPLICABLE"


async def test_partners_cannot_check_coupons(api, keys, catalog):
    result = await api.post(CHECK, {"code": "PRO20"}, token=keys.partner)
    assert result["data"] == {"coupon": None}
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_coupons_are_paged_newest_first(api, db, keys):
    for index in range(5):
        await create_coupon(db, None, CouponSpec(code=f"PAGE{index}", discount_type=DiscountKind.PERCENTAGE,
                                                 percent_off=10, is_active=index != 2),
                            now=T0 + timedelta(minutes=index))
    query = ("query($after: String, $active: Boolean) { coupons(first: 2, after: $after, isActive: $active)"
             " { edges { node { code } } pageInfo { hasNextPage endCursor } } }")
    seen, after = [], None
    while True:
        page = (await api.ok(query, {"after": after}, token=keys.super_admin))["coupons"]
        seen += [edge["node"]["code"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["PAGE4", "PAGE3", "PAGE2", "PAGE1", "PAGE0"]
    inactive = (await api.ok(query, {"active": False}, token=keys.super_admin))["coupons"]
    assert [edge["node"]["code"] for edge in inactive["edges"]] == ["PAGE2"]
    too_many = await api.post("{ coupons(first: 101) { edges { cursor } } }", token=keys.super_admin)
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
