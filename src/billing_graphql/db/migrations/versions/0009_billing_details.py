"""billing details of organizations, their copy on finalized invoices, and trial grants

Revision ID: 0009_billing_details
Revises: 0008_analytics
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0009_billing_details"
down_revision = "0008_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_details",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("tax_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_billing_details_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_billing_details")),
    )
    op.create_table(
        "invoice_parties",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_legal_name", sa.String(length=200), nullable=True),
        sa.Column("buyer_address", sa.Text(), nullable=True),
        sa.Column("buyer_country", sa.String(length=2), nullable=True),
        sa.Column("buyer_tax_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_invoice_parties_invoice_id_invoices"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_parties")),
    )
    op.create_table(
        "trial_grants",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("granted_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_trial_grants_organization_id_organizations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_trial_grants_plan_id_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id", "plan_id", name=op.f("pk_trial_grants")),
    )
    # Trials given before this revision count as granted.
    op.execute(
        "INSERT INTO trial_grants (organization_id, plan_id, granted_at) "
        "SELECT organization_id, plan_id, MIN(created_at) FROM subscriptions "
        "WHERE trial_ends_at IS NOT NULL GROUP BY organization_id, plan_id"
    )


def downgrade() -> None:
    op.drop_table("trial_grants")
    op.drop_table("invoice_parties")
    op.drop_table("billing_details")
