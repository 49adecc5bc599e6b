"""Catalog services on both databases: partial updates, audit before/after, concurrent creates,
coupon terms after redemption, currency changes, and the constraints behind the rules."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.models import (
    Addon,
    AuditEvent,
    Coupon,
    CouponDuration,
    CouponPlan,
    DiscountKind,
    Metric,
    MetricKind,
    Plan,
    PlanFeature,
    PlanLimit,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import FeatureSpec, LimitSpec
from billing_graphql.domain.plan_versions import ApplyTo
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.catalog.addons import AddonPatch, AddonSpec, create_addon, update_addon
from billing_graphql.services.catalog.metrics import create_metric
from billing_graphql.services.catalog.coupons import CouponPatch, CouponSpec, check_coupon, create_coupon, update_coupon
from billing_graphql.services.platform.organizations import create_organization
from billing_graphql.services.catalog.plans import PlanPatch, PlanSpec, create_plan, update_plan
from tests.helpers import T0

ADMIN = Actor(role=Role.SUPER_ADMIN, organization_id=None, subject="user:staff-1")
LATER = T0 + timedelta(hours=1)


async def _count(db, model, *where) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def _audits(db, action: str) -> list[AuditEvent]:
    async with db.read() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows.all())


async def _raises(code: BillingErrorCode, field: str, awaitable) -> BillingError:
    with pytest.raises(BillingError) as caught:
        await awaitable
    assert (caught.value.code, caught.value.field) == (code, field), caught.value
    return caught.value


def _pro(**overrides) -> PlanSpec:
    values = dict(
        name="Pro", slug="pro", currency="USD", base_price_monthly=Decimal("29.00"),
        per_agent_price=Decimal("9.00"), limits=[LimitSpec("agents", 10), LimitSpec("contacts", None)],
        features=[FeatureSpec("aiAgent", True), FeatureSpec("apiAccess", False)],
    )
    values.update(overrides)
    return PlanSpec(**values)


async def test_create_plan_applies_defaults_and_audits(db):
    plan = await create_plan(db, ADMIN, PlanSpec(name="Starter", slug="starter", base_price_monthly=Decimal("299000")),
                             now=T0)
    assert (plan.currency, plan.base_price_annual, plan.sort_order, plan.is_active, plan.trial_days) == (
        "IDR", 2_990_000, 0, True, 14,
    )
    (audit,) = await _audits(db, "plan.created")
    assert (audit.actor, audit.object_type, audit.object_id, audit.before) == (
        "user:staff-1", "Plan", str(plan.id), None,
    )
    assert audit.after["base_price_monthly"] == 299000 and audit.after["limits"] == {}


async def test_partial_update_keeps_what_is_left_out(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    updated = await update_plan(db, ADMIN, plan.id, PlanPatch(name="Pro 2026"), now=LATER)
    assert updated.name == "Pro 2026"
    assert (updated.slug, updated.base_price_monthly, updated.base_price_annual, updated.per_agent_price) == (
        "pro", 2900, 29000, 900,
    )
    assert (updated.created_at, updated.updated_at) == (T0, LATER)
    assert await _count(db, PlanLimit, PlanLimit.plan_id == plan.id) == 2
    assert await _count(db, PlanFeature, PlanFeature.plan_id == plan.id) == 2
    (audit,) = await _audits(db, "plan.updated")
    assert (audit.before["name"], audit.after["name"]) == ("Pro", "Pro 2026")
    assert audit.before["limits"] == audit.after["limits"] == {"agents": 10, "contacts": None}
    # The monthly price alone: an annual price left empty (ten months) follows it, in every version (issue 20,
    # seed 001); an annual price that was given stays as it was.
    repriced = await update_plan(db, ADMIN, plan.id, PlanPatch(base_price_monthly=Decimal("35")), now=LATER)
    assert (repriced.base_price_monthly, repriced.base_price_annual) == (3500, 35000)
    given = await create_plan(db, ADMIN, _pro(name="Pro yearly", slug="pro-yearly", base_price_annual=Decimal("250")),
                              now=T0)
    repriced = await update_plan(db, ADMIN, given.id, PlanPatch(base_price_monthly=Decimal("35")), now=LATER)
    assert (repriced.base_price_monthly, repriced.base_price_annual) == (3500, 25000)


async def test_limits_and_features_given_replace_the_set(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    await update_plan(db, ADMIN, plan.id, PlanPatch(limits=[LimitSpec("messages", 50000)], features=[]), now=LATER)
    async with db.read() as session:
        limits = (await session.execute(
            select(Metric.code, PlanLimit.limit_value).join(Metric).where(PlanLimit.plan_id == plan.id)
        )).all()
    assert limits == [("messages", 50000)]
    assert await _count(db, PlanFeature, PlanFeature.plan_id == plan.id) == 0
    (audit,) = await _audits(db, "plan.updated")
    assert audit.before["features"] == {"aiAgent": True, "apiAccess": False}
    assert (audit.after["limits"], audit.after["features"]) == ({"messages": 50000}, {})


async def test_an_update_that_changes_nothing_writes_nothing(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    same = await update_plan(
        db, ADMIN, plan.id,
        PlanPatch(name="Pro", base_price_monthly=Decimal("29.0"), limits=[LimitSpec("contacts", None),
                                                                          LimitSpec("agents", 10)]),
        now=LATER,
    )
    assert same.updated_at == T0
    assert await _audits(db, "plan.updated") == []


async def test_a_failed_update_changes_nothing(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    await _raises(BillingErrorCode.VALIDATION, "limits[1].metric", update_plan(
        db, ADMIN, plan.id, PlanPatch(name="Renamed", limits=[LimitSpec("agents", 1), LimitSpec("nope", 1)]),
        now=LATER,
    ))
    async with db.read() as session:
        stored = await session.get(Plan, plan.id)
    assert (stored.name, stored.updated_at) == ("Pro", T0)
    assert await _count(db, PlanLimit, PlanLimit.plan_id == plan.id) == 2
    assert await _audits(db, "plan.updated") == []


async def _subscribe(db, plan_id: uuid.UUID, addon_id: uuid.UUID | None = None) -> None:
    organization = await create_organization(db, None, name="Acme", external_id=f"acme-{uuid.uuid4()}", now=T0)
    async with db.write() as session:
        subscription = Subscription(
            id=uuid.uuid4(), organization_id=organization.id, plan_id=plan_id, status=SubscriptionStatus.ACTIVE,
            billing_period=BillingPeriod.MONTHLY, period_anchor=T0, current_period_start=T0,
            current_period_end=T0 + timedelta(days=31), created_at=T0, updated_at=T0,
        )
        session.add(subscription)
        if addon_id is not None:
            await session.flush()
            session.add(SubscriptionAddon(subscription_id=subscription.id, addon_id=addon_id, created_at=T0,
                                          updated_at=T0))


async def test_currency_changes_need_every_price_and_an_unused_plan(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    await _raises(BillingErrorCode.VALIDATION, "currency", update_plan(
        db, ADMIN, plan.id, PlanPatch(currency="IDR", base_price_monthly=Decimal("450000")), now=LATER,
    ))
    prices = dict(base_price_monthly=Decimal("450000"), base_price_annual=Decimal("4500000"),
                  per_agent_price=Decimal("150000"), overage_message_price=Decimal("150"))
    moved = await update_plan(db, ADMIN, plan.id, PlanPatch(currency="idr", **prices), now=LATER)
    assert (moved.currency, moved.base_price_monthly, moved.per_agent_price) == ("IDR", 450000, 150000)
    await _subscribe(db, plan.id)
    usd = dict(base_price_monthly=Decimal("29"), base_price_annual=Decimal("290"), per_agent_price=Decimal("9"),
               overage_message_price=Decimal("0.01"))
    await _raises(BillingErrorCode.VALIDATION, "currency",
                  update_plan(db, ADMIN, plan.id, PlanPatch(currency="USD", **usd), now=LATER))
    # Prices in the plan's own currency may still change while it is in use, saying whom it applies to
    # (issue 20: PLAN_IN_USE without applyTo, nothing changed).
    await _raises(BillingErrorCode.PLAN_IN_USE, "applyTo",
                  update_plan(db, ADMIN, plan.id, PlanPatch(base_price_monthly=Decimal("500000")), now=LATER))
    changed = await update_plan(db, ADMIN, plan.id, PlanPatch(base_price_monthly=Decimal("500000")), now=LATER,
                                apply_to=ApplyTo.NEW_SUBSCRIPTIONS)
    assert (changed.base_price_monthly, changed.version) == (500000, 2)


async def test_addon_partial_update_and_currency_rule(db):
    addon = await create_addon(db, ADMIN, AddonSpec(name="Seat", slug="seat", price_monthly=Decimal("50000")), now=T0)
    assert (addon.currency, addon.price_annual) == ("IDR", 500000)
    updated = await update_addon(db, ADMIN, addon.id, AddonPatch(description="One more seat"), now=LATER)
    assert (updated.name, updated.price_monthly, updated.description) == ("Seat", 50000, "One more seat")
    (audit,) = await _audits(db, "addon.updated")
    assert (audit.before["description"], audit.after["description"]) == ("", "One more seat")
    await _subscribe(db, (await create_plan(db, ADMIN, _pro(), now=T0)).id, addon.id)
    await _raises(BillingErrorCode.VALIDATION, "currency", update_addon(
        db, ADMIN, addon.id,
        AddonPatch(currency="USD", price_monthly=Decimal("3"), price_annual=Decimal("30")), now=LATER,
    ))


@pytest.mark.parametrize("make", ["plan", "addon", "coupon", "metric"])
async def test_concurrent_creates_with_one_key_make_one_row(db, make):
    """Racing creates of one slug/code: exactly one wins, the rest are ALREADY_EXISTS."""
    calls = {
        "plan": lambda: create_plan(db, ADMIN, _pro(), now=T0),
        "addon": lambda: create_addon(db, ADMIN, AddonSpec(name="S", slug="seat", price_monthly=Decimal(1)), now=T0),
        "coupon": lambda: create_coupon(db, ADMIN, CouponSpec(code="race", discount_type=DiscountKind.PERCENTAGE,
                                                              percent_off=5), now=T0),
        "metric": lambda: create_metric(db, ADMIN, code="race_metric", name="Race", kind=MetricKind.GAUGE, now=T0),
    }
    results = await asyncio.gather(*(calls[make]() for _ in range(6)), return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    assert len(errors) == 5, results
    assert all(isinstance(error, BillingError) and error.code is BillingErrorCode.ALREADY_EXISTS for error in errors)
    model = {"plan": Plan, "addon": Addon, "coupon": Coupon, "metric": Metric}[make]
    where = {"plan": Plan.slug == "pro", "addon": Addon.slug == "seat", "coupon": Coupon.code == "RACE",
             "metric": Metric.code == "race_metric"}[make]
    assert await _count(db, model, where) == 1
    assert await _count(db, AuditEvent) == 1


async def test_coupon_terms_switch_cleanly_while_unredeemed(db):
    coupon = await create_coupon(db, ADMIN, CouponSpec(code="flex", discount_type=DiscountKind.PERCENTAGE,
                                                       percent_off=10, duration=CouponDuration.REPEATING,
                                                       duration_in_months=3), now=T0)
    fixed = await update_coupon(db, ADMIN, coupon.id, CouponPatch(
        discount_type=DiscountKind.FIXED, amount_off=Decimal("25000"), currency="IDR",
        duration=CouponDuration.FOREVER), now=LATER)
    assert (fixed.discount_type, fixed.percent_off, fixed.amount_off, fixed.currency) == (
        DiscountKind.FIXED, None, 25000, "IDR",
    )
    assert (fixed.duration, fixed.duration_in_months) == (CouponDuration.FOREVER, None)
    await _raises(BillingErrorCode.VALIDATION, "amountOff",
                  update_coupon(db, ADMIN, coupon.id, CouponPatch(currency="USD"), now=LATER))
    renamed = await update_coupon(db, ADMIN, coupon.id, CouponPatch(code="flex-2"), now=LATER)
    assert renamed.code == "FLEX-2"


async def test_a_redeemed_coupon_keeps_its_terms_but_not_its_limits(db):
    plan = await create_plan(db, ADMIN, _pro(), now=T0)
    coupon = await create_coupon(db, ADMIN, CouponSpec(code="USED", discount_type=DiscountKind.PERCENTAGE,
                                                       percent_off=15, max_uses=10), now=T0)
    async with db.write() as session:
        await session.execute(update(Coupon).where(Coupon.id == coupon.id).values(current_uses=4))
    for patch, field in [
        (CouponPatch(percent_off=20), "percentOff"),
        (CouponPatch(discount_type=DiscountKind.FIXED, amount_off=Decimal(5), currency="USD"), "discountType"),
        (CouponPatch(duration=CouponDuration.FOREVER), "duration"),
        (CouponPatch(code="USED2"), "code"),
        (CouponPatch(max_uses=3), "maxUses"),
    ]:
        await _raises(BillingErrorCode.VALIDATION, field, update_coupon(db, ADMIN, coupon.id, patch, now=LATER))
    changed = await update_coupon(db, ADMIN, coupon.id, CouponPatch(
        percent_off=15, code="used", name="Used coupon", max_uses=None, valid_until=T0 + timedelta(days=30),
        plan_ids=[plan.id, plan.id], is_active=False,
    ), now=LATER)
    assert (changed.percent_off, changed.max_uses, changed.current_uses, changed.is_active) == (15, None, 4, False)
    assert await _count(db, CouponPlan, CouponPlan.coupon_id == coupon.id) == 1
    (audit,) = await _audits(db, "coupon.updated")
    assert (audit.before["max_uses"], audit.after["max_uses"]) == (10, None)
    assert audit.after["plan_ids"] == [str(plan.id)] and audit.before["plan_ids"] == []
    cleared = await update_coupon(db, ADMIN, coupon.id, CouponPatch(plan_ids=[]), now=LATER)
    assert cleared.id == coupon.id and await _count(db, CouponPlan) == 0


async def test_check_coupon_reports_the_plan_it_was_asked_about(db):
    pro = await create_plan(db, ADMIN, _pro(), now=T0)
    team = await create_plan(db, ADMIN, _pro(slug="team", name="Team"), now=T0)
    await create_coupon(db, ADMIN, CouponSpec(code="PROONLY", discount_type=DiscountKind.PERCENTAGE, percent_off=5,
                                              plan_ids=[pro.id]), now=T0)
    assert (await check_coupon(db, code="proonly", now=T0, plan_id=pro.id)).valid
    refused = await check_coupon(db, code="proonly", now=T0, plan_id=team.id)
    assert refused.refusal is BillingErrorCode.COUPON_NOT_APPLICABLE and refused.coupon is not None


# ------------------------------------------------------------------ the constraints behind the rules


async def _violates(db, statement) -> None:
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            await session.execute(statement)


def _coupon_row(**overrides):
    values = dict(id=uuid.uuid4(), code="RAW", name="", discount_type="PERCENTAGE", percent_off=10, amount_off=None,
                  currency=None, duration="ONCE", duration_in_months=None, max_uses=None, current_uses=0,
                  is_active=True, created_at=T0, updated_at=T0)
    values.update(overrides)
    return insert(Coupon.__table__).values(**values)


def _plan_row(**overrides):
    values = dict(id=uuid.uuid4(), name="Raw", slug="raw", description="", currency="IDR", base_price_monthly=1,
                  base_price_annual=10, per_agent_price=0, overage_message_price=0, included_agents=1, trial_days=14,
                  is_active=True, sort_order=0, created_at=T0, updated_at=T0)
    values.update(overrides)
    return insert(Plan.__table__).values(**values)


async def test_database_refuses_what_the_services_refuse(db):
    async with db.write() as session:
        await session.execute(_coupon_row())
        await session.execute(_plan_row())
    await _violates(db, _coupon_row(code="RAW"))  # unique
    await _violates(db, _coupon_row(code="lower"))  # stored upper-case
    await _violates(db, _coupon_row(code="P0", percent_off=0))
    await _violates(db, _coupon_row(code="P101", percent_off=101))
    await _violates(db, _coupon_row(code="FX", discount_type="FIXED", percent_off=None, amount_off=500))  # no currency
    await _violates(db, _coupon_row(code="RP", duration="REPEATING"))  # no months (NULL)
    await _violates(db, _coupon_row(code="PN", percent_off=None))  # a PERCENTAGE without its percentage
    await _violates(db, _coupon_row(code="FN", discount_type="FIXED", percent_off=None, currency="USD"))  # no amount
    await _violates(db, _coupon_row(code="FZ", discount_type="FIXED", percent_off=None, amount_off=0, currency="USD"))
    await _violates(db, _coupon_row(code="MAX", max_uses=2, current_uses=3))
    await _violates(db, _coupon_row(code="WIN", valid_from=T0, valid_until=T0))
    await _violates(db, _plan_row(slug="raw"))  # unique
    await _violates(db, _plan_row(slug="neg", base_price_monthly=-1))
    await _violates(db, _plan_row(slug="trial", trial_days=731))
    async with db.read() as session:
        plan_id = await session.scalar(select(Plan.id).where(Plan.slug == "raw"))
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == "agents"))
    await _violates(db, insert(PlanLimit.__table__).values(plan_id=plan_id, metric_id=metric_id, limit_value=-1))
    await _violates(db, insert(PlanLimit.__table__).values(plan_id=plan_id, metric_id=uuid.uuid4(), limit_value=1))
