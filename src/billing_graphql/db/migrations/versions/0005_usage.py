"""usage limit events: one row per organization, metric, billing month and threshold crossed

Revision ID: 0005_usage
Revises: 0004_checkout
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0005_usage"
down_revision = "0004_checkout"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_limit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("metric_id", sa.Uuid(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("threshold IN (80, 100)", name=op.f("ck_usage_limit_events_threshold_known")),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name=op.f("fk_usage_limit_events_metric_id_metrics")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name=op.f("fk_usage_limit_events_organization_id_organizations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_limit_events")),
        sa.UniqueConstraint("organization_id", "metric_id", "period_key", "threshold", name="uq_usage_limit_event"),
    )


def downgrade() -> None:
    op.drop_table("usage_limit_events")
