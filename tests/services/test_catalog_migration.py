"""Migration 0003_catalog: stricter coupon checks, applied to a database holding coupons that
other rows reference (on SQLite the table is rebuilt; nothing referencing it may be lost)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import column, func, insert, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from billing_graphql.db.engine import make_engine
from billing_graphql.db.migrate import migrate
from billing_graphql.db.models import Coupon, CouponPlan, CouponRedemption, Organization, Plan, Subscription
from tests.helpers import T0

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture
async def scratch_engine(backend, tmp_path) -> AsyncIterator:
    """An engine on a new, empty database (not the shared test database)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'migration.db'}")
        yield engine
        await engine.dispose()
        return
    server = make_url(os.environ.get("BILLING_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"bgmig_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server.render_as_string(hide_password=False))
    try:
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable: as the shared fixtures do
        await admin.dispose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL unreachable: {exc!r}")
        pytest.skip(f"PostgreSQL unreachable: {exc!r}")
    engine = make_engine(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


LATER_COLUMNS = {"version", "plan_version", "pending_plan_version", "usage_billed"}  # added by 0016


def _before_0016(model_table):
    """A model's table without the columns migration 0016 adds (whose model defaults would be sent)."""
    return table(model_table.name, *(column(c.name, c.type) for c in model_table.c if c.name not in LATER_COLUMNS))


def _coupon(**values):
    row = dict(id=uuid.uuid4(), code="KEEP10", name="", discount_type="PERCENTAGE", percent_off=10,
               amount_off=None, currency=None, duration="ONCE", duration_in_months=None, max_uses=None,
               current_uses=1, is_active=True, created_at=T0, updated_at=T0)
    row.update(values)
    return row


async def test_upgrade_keeps_coupons_and_their_references_and_closes_the_null_holes(scratch_engine):
    engine = scratch_engine
    await migrate(engine, "0002")
    organization_id, plan_id, subscription_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    coupon = _coupon()
    async with engine.begin() as connection:
        # The table as revision 0002 has it (the model's later columns, e.g. currency, are not there yet).
        organizations = table("organizations", *(column(name, Organization.__table__.c[name].type) for name in
                                                 ("id", "name", "external_id", "credit_balance", "created_at",
                                                  "updated_at")))
        await connection.execute(insert(organizations).values(
            id=organization_id, name="Acme", external_id="acme", credit_balance=0, created_at=T0, updated_at=T0))
        await connection.execute(insert(_before_0016(Plan.__table__)).values(
            id=plan_id, name="Pro", slug="pro", description="", currency="IDR", base_price_monthly=1,
            base_price_annual=10, per_agent_price=0, overage_message_price=0, included_agents=1, trial_days=14,
            is_active=True, sort_order=0, created_at=T0, updated_at=T0))
        await connection.execute(insert(Coupon.__table__).values(**coupon))
        # What 0001's checks let through and 0003's refuse would block the upgrade: there is none here.
        await connection.execute(insert(CouponPlan.__table__).values(coupon_id=coupon["id"], plan_id=plan_id))
        await connection.execute(insert(_before_0016(Subscription.__table__)).values(
            id=subscription_id, organization_id=organization_id, plan_id=plan_id, status="ACTIVE",
            billing_period="MONTHLY", period_anchor=T0, current_period_start=T0,
            current_period_end=T0 + timedelta(days=31), cancel_at_period_end=False, agent_count=1,
            payment_gateway="sandbox", coupon_id=coupon["id"], retry_count=0, created_at=T0, updated_at=T0))
        await connection.execute(insert(CouponRedemption.__table__).values(
            id=uuid.uuid4(), coupon_id=coupon["id"], organization_id=organization_id,
            subscription_id=subscription_id, redeemed_at=T0))
        # 0001's hole: a PERCENTAGE coupon without a percentage passes its check.
        await connection.execute(insert(Coupon.__table__).values(**_coupon(code="HOLE", percent_off=None)))
        await connection.execute(text("DELETE FROM coupons WHERE code = 'HOLE'"))

    await migrate(engine, "0003_catalog")

    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(CouponPlan.__table__)) == 1
        assert await connection.scalar(select(func.count()).select_from(CouponRedemption.__table__)) == 1
        assert await connection.scalar(select(Subscription.__table__.c.coupon_id)) == coupon["id"]
        assert await connection.scalar(select(Coupon.__table__.c.code)) == "KEEP10"
        if engine.dialect.name == "sqlite":
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    for hole in (dict(percent_off=None), dict(duration="REPEATING"),
                 dict(discount_type="FIXED", percent_off=None, currency="USD")):
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(insert(Coupon.__table__).values(**_coupon(code="NEW", **hole)))
    # Foreign keys still hold after the rebuild (SQLite): a redemption of no coupon is refused.
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(CouponRedemption.__table__).values(
                id=uuid.uuid4(), coupon_id=uuid.uuid4(), organization_id=organization_id, redeemed_at=T0))


async def test_0016_turns_overage_message_prices_into_standard_charges_on_messages(scratch_engine):
    """Migration 0016: a plan's overageMessagePrice becomes the STANDARD charge on messages of its
    version 1, the messages limit included (none listed: every unit included); plans without one
    get no charge."""
    from billing_graphql.db.models import Metric, PlanCharge, PlanLimit
    from billing_graphql.domain.charges import ChargeModel

    engine = scratch_engine
    await migrate(engine, "0018")
    plan_columns = ("id", "name", "slug", "description", "currency", "base_price_monthly", "base_price_annual",
                    "per_agent_price", "overage_message_price", "included_agents", "trial_days", "is_active",
                    "sort_order", "created_at", "updated_at")
    plans = table("plans", *(column(name, Plan.__table__.c[name].type) for name in plan_columns))
    limited, unlimited, free = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as connection:
        for plan_id, slug, overage in ((limited, "limited", 150), (unlimited, "unlimited", 100), (free, "free", 0)):
            await connection.execute(insert(plans).values(
                id=plan_id, name=slug, slug=slug, description="", currency="IDR", base_price_monthly=1000,
                base_price_annual=10000, per_agent_price=0, overage_message_price=overage, included_agents=1,
                trial_days=0, is_active=True, sort_order=0, created_at=T0, updated_at=T0))
        messages = (await connection.execute(select(Metric.__table__.c.id).where(Metric.__table__.c.code == "messages"))
                    ).scalar_one()
        await connection.execute(insert(PlanLimit.__table__).values(plan_id=limited, metric_id=messages,
                                                                    limit_value=1000))
    await migrate(engine)
    charges = PlanCharge.__table__
    async with engine.connect() as connection:
        rows = (await connection.execute(select(charges.c.plan_id, charges.c.version, charges.c.metric_id,
                                                charges.c.model, charges.c.included_units, charges.c.unit_amount)
                                         )).all()
        versions = dict((await connection.execute(select(Plan.__table__.c.id, Plan.__table__.c.version))).all())
    found = {row.plan_id: row for row in rows}
    assert set(found) == {limited, unlimited}
    assert (found[limited].version, found[limited].metric_id, found[limited].model, found[limited].included_units,
            found[limited].unit_amount) == (1, messages, ChargeModel.STANDARD, 1000, 150)
    assert (found[unlimited].included_units, found[unlimited].unit_amount) == (None, 100)
    assert versions == {limited: 1, unlimited: 1, free: 1}
