"""Usage charges per metric and plan versions (issue 20)

- plan_charges: the price of a metric's usage in a version of a plan (STANDARD, GRADUATED, VOLUME,
  PACKAGE). A plan's ``overage_message_price`` becomes a STANDARD charge on ``messages`` whose
  included units are the plan's messages limit (NULL: unlimited, every unit included).
- plans.version, plan_versions: a plan's current version number and the frozen prices of older ones;
  subscriptions.plan_version / pending_plan_version: the version a subscription pays, and the one it
  moves to at renewal; subscriptions.usage_billed: usage a plan change's invoice billed already.
- invoice_lines.tier_breakdown and the USAGE line kind.

Revision ID: 0016
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None

# The kinds 0018 left (ONE_OFF included); 0016 adds USAGE.
LINE_KINDS = ("PLAN", "SEATS", "ADDON", "OVERAGE", "PRORATION_CREDIT", "PRORATION_CHARGE", "DISCOUNT", "ONE_OFF")


def _line_kinds(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_constraint(op.f("ck_invoice_lines_invoice_line_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_invoice_lines_invoice_line_kind"),
                                      "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")")


def upgrade() -> None:
    with op.batch_alter_table("plans") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.create_check_constraint(op.f("ck_plans_version_positive"), "version >= 1")
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("plan_version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("pending_plan_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("usage_billed", sa.JSON(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_subscriptions_plan_version_order"),
            "plan_version >= 1 AND (pending_plan_version IS NULL OR pending_plan_version > plan_version)")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("tier_breakdown", sa.JSON(), nullable=True))
    _line_kinds((*LINE_KINDS, "USAGE"))
    op.create_table(
        "plan_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("base_price_monthly", sa.BigInteger(), nullable=False),
        sa.Column("base_price_annual", sa.BigInteger(), nullable=False),
        sa.Column("per_agent_price", sa.BigInteger(), nullable=False),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_plan_versions_number_positive")),
        sa.CheckConstraint("base_price_monthly >= 0 AND base_price_annual >= 0 AND per_agent_price >= 0",
                           name=op.f("ck_plan_versions_prices_not_negative")),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_versions_plan_id_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("plan_id", "number", name="uq_plan_versions_plan_number"),
    )
    op.create_table(
        "plan_charges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.Enum("STANDARD", "GRADUATED", "VOLUME", "PACKAGE", name="charge_model",
                                   native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column("included_units", sa.BigInteger(), nullable=True),
        sa.Column("unit_amount", billing_graphql.db.types.DecimalText(length=40), nullable=False),
        sa.Column("package_size", sa.BigInteger(), nullable=True),
        sa.Column("tiers", sa.JSON(), nullable=True),
        sa.CheckConstraint("included_units IS NULL OR included_units >= 0",
                           name=op.f("ck_plan_charges_included_units_not_negative")),
        sa.CheckConstraint("(model = 'PACKAGE' AND package_size IS NOT NULL AND package_size >= 1)"
                           " OR (model <> 'PACKAGE' AND package_size IS NULL)",
                           name=op.f("ck_plan_charges_package_size_shape")),
        sa.CheckConstraint("(model IN ('GRADUATED', 'VOLUME') AND tiers IS NOT NULL)"
                           " OR (model IN ('STANDARD', 'PACKAGE') AND tiers IS NULL)",
                           name=op.f("ck_plan_charges_tiers_shape")),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_charges_plan_id_plans"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name=op.f("fk_plan_charges_metric_id_metrics")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_charges")),
        sa.UniqueConstraint("plan_id", "version", "metric_id", name="uq_plan_charges_plan_version_metric"),
    )
    # overageMessagePrice becomes the STANDARD charge on messages, included units = the messages limit.
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT plans.id AS plan_id, plans.overage_message_price AS price, metrics.id AS metric_id, "
        "plan_limits.limit_value AS limit_value FROM plans JOIN metrics ON metrics.code = 'messages' "
        "LEFT JOIN plan_limits ON plan_limits.plan_id = plans.id AND plan_limits.metric_id = metrics.id "
        "WHERE plans.overage_message_price > 0").columns(
            sa.column("plan_id", sa.Uuid()), sa.column("price", sa.BigInteger()), sa.column("metric_id", sa.Uuid()),
            sa.column("limit_value", sa.BigInteger()))).all()
    charges = sa.table(
        "plan_charges", sa.column("id", sa.Uuid()), sa.column("plan_id", sa.Uuid()), sa.column("version", sa.Integer()),
        sa.column("position", sa.Integer()), sa.column("metric_id", sa.Uuid()), sa.column("model", sa.String()),
        sa.column("included_units", sa.BigInteger()), sa.column("unit_amount", sa.String()))
    for plan_id, price, metric_id, limit in rows:
        connection.execute(charges.insert().values(
            id=uuid.uuid4(), plan_id=plan_id, version=1, position=0, metric_id=metric_id, model="STANDARD",
            included_units=limit, unit_amount=str(price)))


def downgrade() -> None:
    op.drop_table("plan_charges")
    op.drop_table("plan_versions")
    op.execute("DELETE FROM invoice_lines WHERE kind = 'USAGE'")
    _line_kinds(LINE_KINDS)
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("tier_breakdown")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_constraint(op.f("ck_subscriptions_plan_version_order"), type_="check")
        batch.drop_column("usage_billed")
        batch.drop_column("pending_plan_version")
        batch.drop_column("plan_version")
    with op.batch_alter_table("plans") as batch:
        batch.drop_constraint(op.f("ck_plans_version_positive"), type_="check")
        batch.drop_column("version")
