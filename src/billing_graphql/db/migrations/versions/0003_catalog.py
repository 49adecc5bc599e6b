"""Coupon shape checks that also hold when a column is NULL.

A CHECK passes when its expression is NULL, and in 0001's checks a NULL ``percent_off``,
``amount_off`` or ``duration_in_months`` made the whole expression NULL: a PERCENTAGE coupon
without a percentage, a FIXED one without an amount, a REPEATING one without months were
all accepted. The checks now test for NULL explicitly.

On SQLite the table is rebuilt (batch mode); ``db.migrate`` runs SQLite upgrades with foreign
keys off, so rows referencing coupons are kept.

Revision ID: 0003_catalog
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003_catalog"
down_revision = "0002"
branch_labels = None
depends_on = None

DISCOUNT_SHAPE = (
    "(discount_type = 'PERCENTAGE' AND percent_off IS NOT NULL AND percent_off BETWEEN 1 AND 100"
    " AND amount_off IS NULL)"
    " OR (discount_type = 'FIXED' AND amount_off IS NOT NULL AND amount_off > 0 AND currency IS NOT NULL"
    " AND percent_off IS NULL)"
)
DURATION_MONTHS = (
    "(duration = 'REPEATING' AND duration_in_months IS NOT NULL AND duration_in_months >= 1)"
    " OR (duration <> 'REPEATING' AND duration_in_months IS NULL)"
)
OLD_DISCOUNT_SHAPE = (
    "(discount_type = 'PERCENTAGE' AND percent_off BETWEEN 1 AND 100 AND amount_off IS NULL)"
    " OR (discount_type = 'FIXED' AND amount_off > 0 AND currency IS NOT NULL AND percent_off IS NULL)"
)
OLD_DURATION_MONTHS = (
    "(duration = 'REPEATING' AND duration_in_months >= 1)"
    " OR (duration <> 'REPEATING' AND duration_in_months IS NULL)"
)


def _replace_checks(discount_shape: str, duration_months: str) -> None:
    with op.batch_alter_table("coupons") as batch_op:
        batch_op.drop_constraint(op.f("ck_coupons_discount_shape"), type_="check")
        batch_op.drop_constraint(op.f("ck_coupons_duration_months"), type_="check")
        batch_op.create_check_constraint(op.f("ck_coupons_discount_shape"), discount_shape)
        batch_op.create_check_constraint(op.f("ck_coupons_duration_months"), duration_months)


def upgrade() -> None:
    _replace_checks(DISCOUNT_SHAPE, DURATION_MONTHS)


def downgrade() -> None:
    _replace_checks(OLD_DISCOUNT_SHAPE, OLD_DURATION_MONTHS)
