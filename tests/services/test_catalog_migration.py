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
        await connection.execute(insert(Plan.__table__).values(
            id=plan_id, name="Pro", slug="pro", description="", currency="IDR", base_price_monthly=1,
            base_price_annual=10, per_agent_price=0, overage_message_price=0, included_agents=1, trial_days=14,
            is_active=True, sort_order=0, created_at=T0, updated_at=T0))
        await connection.execute(insert(Coupon.__table__).values(**coupon))
        # What 0001's checks let through and 0003's refuse would block the upgrade: there is none here.
        await connection.execute(insert(CouponPlan.__table__).values(coupon_id=coupon["id"], plan_id=plan_id))
        await connection.execute(insert(Subscription.__table__).values(
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
