"""Catalog and payment rows written directly with the models (the catalog API is another branch's)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    AddonUnit,
    Coupon,
    CouponDuration,
    CouponPlan,
    DiscountKind,
    Metric,
    Organization,
    PaymentMethod,
    PaymentMethodType,
    Plan,
    PlanLimit,
    TaxRate,
    UsageCounter,
)
from tests.helpers import T0

_counter = itertools.count(1)


async def make_plan(
    db: Database,
    *,
    name: str | None = None,
    slug: str | None = None,
    currency: str = "IDR",
    monthly: int = 299000,
    annual: int | None = None,
    per_agent: int = 0,
    included_agents: int = 1,
    trial_days: int = 0,
    active: bool = True,
    sort_order: int = 0,
    limits: dict[str, int | None] | None = None,
    now: datetime = T0,
) -> Plan:
    number = next(_counter)
    plan = Plan(
        id=uuid.uuid4(),
        name=name or f"Plan {number}",
        slug=slug or f"plan-{number}-{uuid.uuid4().hex[:6]}",
        currency=currency,
        base_price_monthly=monthly,
        base_price_annual=monthly * 10 if annual is None else annual,
        per_agent_price=per_agent,
        overage_message_price=0,
        included_agents=included_agents,
        trial_days=trial_days,
        is_active=active,
        sort_order=sort_order,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(plan)
        if limits:
            from sqlalchemy import select

            metrics = {m.code: m.id for m in (await session.scalars(select(Metric))).all()}
            await session.flush()
            for code, value in limits.items():
                session.add(PlanLimit(plan_id=plan.id, metric_id=metrics[code], limit_value=value))
    return plan


async def make_addon(
    db: Database, *, name: str | None = None, currency: str = "IDR", monthly: int = 50000,
    annual: int | None = None, per_agent: bool = False, active: bool = True, now: datetime = T0,
) -> Addon:
    number = next(_counter)
    addon = Addon(
        id=uuid.uuid4(),
        name=name or f"Addon {number}",
        slug=f"addon-{number}-{uuid.uuid4().hex[:6]}",
        currency=currency,
        price_monthly=monthly,
        price_annual=monthly * 10 if annual is None else annual,
        unit=AddonUnit.PER_AGENT if per_agent else AddonUnit.FLAT,
        is_active=active,
        sort_order=number,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(addon)
    return addon


async def make_coupon(
    db: Database,
    *,
    code: str | None = None,
    percent_off: int | None = 20,
    amount_off: int | None = None,
    currency: str | None = None,
    duration: CouponDuration = CouponDuration.ONCE,
    months: int | None = None,
    max_uses: int | None = None,
    current_uses: int = 0,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    active: bool = True,
    plans: list[Plan] = (),
    now: datetime = T0,
) -> Coupon:
    fixed = amount_off is not None
    coupon = Coupon(
        id=uuid.uuid4(),
        code=(code or f"SAVE{next(_counter)}").upper(),
        name="test coupon",
        discount_type=DiscountKind.FIXED if fixed else DiscountKind.PERCENTAGE,
        percent_off=None if fixed else percent_off,
        amount_off=amount_off,
        currency=(currency or "IDR") if fixed else None,
        duration=duration,
        duration_in_months=months,
        max_uses=max_uses,
        current_uses=current_uses,
        valid_from=valid_from,
        valid_until=valid_until,
        is_active=active,
        created_at=now,
        updated_at=now,
    )
    async with db.write() as session:
        session.add(coupon)
        await session.flush()
        for plan in plans:
            session.add(CouponPlan(coupon_id=coupon.id, plan_id=plan.id))
    return coupon


async def make_payment_method(
    db: Database, organization_id: uuid.UUID, *, token: str = "pm_card_visa", is_default: bool = True,
    gateway: str = "sandbox", now: datetime = T0,
) -> PaymentMethod:
    method = PaymentMethod(
        id=uuid.uuid4(),
        organization_id=organization_id,
        gateway=gateway,
        gateway_payment_method_id=token,
        type=PaymentMethodType.CREDIT_CARD,
        label=f"Test {token}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2030,
        is_default=is_default,
        created_at=now,
    )
    async with db.write() as session:
        session.add(method)
    return method


async def set_agents(db: Database, organization_id: uuid.UUID, agents: int, now: datetime = T0) -> None:
    """The organization's agents gauge (what seat billing counts)."""
    from sqlalchemy import select

    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == "agents"))
        counter = await session.scalar(
            select(UsageCounter).where(
                UsageCounter.organization_id == organization_id,
                UsageCounter.metric_id == metric_id,
                UsageCounter.period_key == "current",
            )
        )
        if counter is None:
            session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key="current",
                                     value=agents, updated_at=now))
        else:
            counter.value = agents


async def set_credit(db: Database, organization_id: uuid.UUID, amount: int, currency: str = "IDR") -> None:
    async with db.write() as session:
        organization = await session.get(Organization, organization_id)
        organization.credit_balance = amount
        organization.credit_currency = currency


async def add_tax_rate(db: Database, *, name: str, rate, currency: str, numerator: int = 1,
                       denominator: int = 1, effective_from: datetime = T0 - timedelta(days=365)) -> None:
    async with db.write() as session:
        session.add(TaxRate(name=name, rate=rate, base_numerator=numerator, base_denominator=denominator,
                            currency=currency, effective_from=effective_from, created_at=effective_from))


async def database_state(db: Database, *, exclude: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every row of every table (sorted), to assert that a failed call wrote nothing at all."""
    from sqlalchemy import select

    from billing_graphql.db.models import Base

    state: dict[str, list[tuple]] = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in exclude:
                continue
            rows = (await session.execute(select(table))).all()
            state[table.name] = sorted((tuple(repr(value) for value in row) for row in rows))
    return state
