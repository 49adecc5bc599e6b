"""usage aggregations: metrics.aggregation and .property, usage_events.properties, usage_unique_values

Existing metrics are backfilled from their kind: COUNTER is SUM of quantity, GAUGE is LATEST.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

AGGREGATIONS = ("COUNT", "SUM", "MAX", "UNIQUE_COUNT", "LATEST")


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("aggregation", sa.Enum(*AGGREGATIONS, name="metric_aggregation", native_enum=False,
                                                          create_constraint=False, length=32), nullable=True))
        batch.add_column(sa.Column("property", sa.String(length=64), nullable=True))
    op.execute("UPDATE metrics SET aggregation = CASE kind WHEN 'GAUGE' THEN 'LATEST' ELSE 'SUM' END")
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("aggregation", existing_type=sa.String(length=32), nullable=False)
        batch.create_check_constraint(
            op.f("ck_metrics_metric_aggregation"), "aggregation IN ('COUNT', 'SUM', 'MAX', 'UNIQUE_COUNT', 'LATEST')")
        batch.create_check_constraint(
            op.f("ck_metrics_kind_matches_aggregation"),
            "(kind = 'GAUGE' AND aggregation = 'LATEST') OR (kind = 'COUNTER' AND aggregation <> 'LATEST')")
        batch.create_check_constraint(
            op.f("ck_metrics_property_fits_aggregation"),
            "(aggregation = 'COUNT' AND property IS NULL) OR (aggregation = 'UNIQUE_COUNT' AND property IS NOT NULL)"
            " OR aggregation IN ('SUM', 'MAX', 'LATEST')")
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("properties", sa.JSON(), nullable=True))
    op.create_table(
        "usage_unique_values",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("metric_id", sa.Uuid(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name=op.f("fk_usage_unique_values_metric_id_metrics")),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name=op.f("fk_usage_unique_values_organization_id_organizations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "metric_id", "period_key", "value",
                                name=op.f("pk_usage_unique_values")),
    )


def downgrade() -> None:
    op.drop_table("usage_unique_values")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("properties")
    with op.batch_alter_table("metrics") as batch:
        batch.drop_constraint(op.f("ck_metrics_property_fits_aggregation"), type_="check")
        batch.drop_constraint(op.f("ck_metrics_kind_matches_aggregation"), type_="check")
        batch.drop_constraint(op.f("ck_metrics_metric_aggregation"), type_="check")
        batch.drop_column("property")
        batch.drop_column("aggregation")
