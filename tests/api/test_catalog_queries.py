"""SQL statements of the catalog operations stay constant however many plans and coupons are
listed (each file's declared count on the demo data is checked by test_queries_dir.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select

from billing_graphql.db.models import (
    Addon,
    Coupon,
    CouponPlan,
    DiscountKind,
    Metric,
    Plan,
    PlanFeature,
    PlanLimit,
)
from tests.helpers import T0, count_statements

QUERIES = Path(__file__).resolve().parents[2] / "queries"
def operation(name: str) -> str:
    """A catalog operation from queries/ (each also runs in test_queries_dir.py)."""
    return next(QUERIES.rglob(f"{name}.graphql")).read_text()


async def _warm(api, token) -> None:
    # A key's first use records last_used_at: keep that write out of the counts.
    await api.ok("{ clock { now } }", token=token)


async def _many_plans(db, count: int, start: int = 0) -> list[uuid.UUID]:
    """``count`` plans (every fifth inactive) with a limit on every metric and three features,
    and 20 add-ons."""
    async with db.write() as session:
        metrics = (await session.execute(select(Metric.code, Metric.id))).all()
        plan_ids = [uuid.uuid4() for _ in range(count)]
        session.add_all(
            Plan(id=plan_id, name=f"Plan {index:03}", slug=f"plan-{index:03}", currency="IDR",
                 base_price_monthly=1000 * index, base_price_annual=10000 * index, sort_order=index % 7,
                 is_active=index % 5 != 0, created_at=T0, updated_at=T0)
            for index, plan_id in enumerate(plan_ids, start)
        )
        await session.flush()
        session.add_all(PlanLimit(plan_id=plan_id, metric_id=metric_id, limit_value=None if code == "agents" else 100)
                        for plan_id in plan_ids for code, metric_id in metrics)
        session.add_all(PlanFeature(plan_id=plan_id, key=key, enabled=True)
                        for plan_id in plan_ids for key in ("aiAgent", "apiAccess", "dedicatedSupport"))
        session.add_all(Addon(name=f"Add-on {index}", slug=f"addon-{start}-{index}", price_monthly=index,
                              price_annual=index, created_at=T0, updated_at=T0) for index in range(20))
    return plan_ids


async def _many_coupons(db, plan_ids: list[uuid.UUID], count: int) -> None:
    async with db.write() as session:
        coupon_ids = [uuid.uuid4() for _ in range(count)]
        session.add_all(
            Coupon(id=coupon_id, code=f"C{index:03}", discount_type=DiscountKind.PERCENTAGE, percent_off=10,
                   created_at=T0, updated_at=T0)
            for index, coupon_id in enumerate(coupon_ids)
        )
        await session.flush()
        session.add_all(CouponPlan(coupon_id=coupon_id, plan_id=plan_ids[(index + offset) % len(plan_ids)])
                        for index, coupon_id in enumerate(coupon_ids) for offset in (0, 1))


async def _count(api, db, query, token, variables=None) -> tuple[int, dict]:
    with count_statements(db) as counter:
        data = await api.ok(query, variables, token=token)
    return counter.count, data


async def test_listing_plans_with_limits_and_features_is_constant(api, db, keys):
    await _warm(api, keys.super_admin)
    await _warm(api, keys.member)
    await _many_plans(db, 2)
    small_admin, _ = await _count(api, db, operation("CatalogPlans"), keys.super_admin)
    small_page, _ = await _count(api, db, operation("PricingPage"), keys.member)
    await _many_plans(db, 200, start=2)
    admin_count, admin = await _count(api, db, operation("CatalogPlans"), keys.super_admin)
    page_count, page = await _count(api, db, operation("PricingPage"), keys.member)
    assert len(admin["plans"]) == 202 and all(len(plan["limits"]) == 7 for plan in admin["plans"])
    assert len(page["plans"]) == 161 and all(plan["aiAgent"] for plan in page["plans"])
    assert all(plan["maxAgents"] is None and plan["maxContacts"] == 100 for plan in page["plans"])
    # key lookup, and one statement per root on the compiled path's SQL tier (limits, features and flags
    # inside it): plans, and metrics (admin) or add-ons (pricing page); graphql-core sends 5 (queries/ headers)
    assert (small_admin, admin_count) == (3, 3)
    assert (small_page, page_count) == (3, 3)


async def test_listing_coupons_with_their_plans_is_constant(api, db, keys):
    await _warm(api, keys.super_admin)
    plan_ids = await _many_plans(db, 10)
    await _many_coupons(db, plan_ids, 3)
    small, _ = await _count(api, db, operation("Coupons"), keys.super_admin, {"first": 100})
    async with db.write() as session:
        await session.execute(CouponPlan.__table__.delete())
        await session.execute(Coupon.__table__.delete())
    await _many_coupons(db, plan_ids, 120)
    count, data = await _count(api, db, operation("Coupons"), keys.super_admin, {"first": 100})
    edges = data["coupons"]["edges"]
    assert len(edges) == 100 and data["coupons"]["pageInfo"]["hasNextPage"]
    assert all(len(edge["node"]["applicablePlans"]) == 2 for edge in edges)
    # key lookup, and one statement on the compiled path's SQL tier (the page of coupons with their plans inside
    # it); graphql-core sends 3: the key, the page, their plans (queries/admin/Coupons.graphql)
    assert (small, count) == (2, 2)


# ------------------------------------------------------------------ queries/ files
