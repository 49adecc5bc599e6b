"""checkout sessions: the plan, period and coupon a started checkout subscribes to

Revision ID: 0004_checkout
Revises: 0003_catalog
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0004_checkout"
down_revision = "0003_catalog"
branch_labels = None
depends_on = None

OPEN_ONLY = "status = 'OPEN'"


def upgrade() -> None:
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("billing_period", sa.Enum("MONTHLY", "ANNUAL", name="checkout_billing_period", native_enum=False,
                                            create_constraint=True, length=32), nullable=False),
        sa.Column("coupon_code", sa.String(length=64), nullable=True),
        sa.Column("agent_count", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Enum("OPEN", "COMPLETED", "EXPIRED", name="checkout_status", native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column("gateway_payment_id", sa.String(length=200), nullable=True),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("agent_count >= 0", name=op.f("ck_checkout_sessions_agent_count_not_negative")),
        sa.CheckConstraint(
            "status <> 'COMPLETED' OR (gateway_payment_id IS NOT NULL AND payment_id IS NOT NULL"
            " AND subscription_id IS NOT NULL AND completed_at IS NOT NULL)",
            name=op.f("ck_checkout_sessions_completed_has_payment_and_subscription"),
        ),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_checkout_sessions_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_checkout_sessions_organization_id_organizations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_checkout_sessions_payment_id_payments")),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_checkout_sessions_plan_id_plans")),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name=op.f("fk_checkout_sessions_subscription_id_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_checkout_sessions_invoice_id")),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.create_index("uq_checkout_sessions_one_open_per_organization", ["organization_id"], unique=True,
                              sqlite_where=sa.text(OPEN_ONLY), postgresql_where=sa.text(OPEN_ONLY))


def downgrade() -> None:
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index("uq_checkout_sessions_one_open_per_organization", sqlite_where=sa.text(OPEN_ONLY),
                            postgresql_where=sa.text(OPEN_ONLY))
    op.drop_table("checkout_sessions")
