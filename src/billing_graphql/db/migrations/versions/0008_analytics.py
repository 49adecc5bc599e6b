"""analytics: subscription_mrr_revisions, the history of every subscription's MRR

Revision ID: 0008_analytics
Revises: 0007_webhooks
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0008_analytics"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None

STATUSES = ("TRIALING", "ACTIVE", "PAST_DUE", "UNPAID", "CANCELED")


def upgrade() -> None:
    op.create_table(
        "subscription_mrr_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="mrr_revision_status", native_enum=False, create_constraint=True,
                                    length=32), nullable=False),
        sa.Column("mrr_minor", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_to", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from",
                           name=op.f("ck_subscription_mrr_revisions_valid_ordered")),
        sa.CheckConstraint("mrr_minor >= 0", name=op.f("ck_subscription_mrr_revisions_mrr_not_negative")),
        sa.CheckConstraint("mrr_minor = 0 OR status IN ('ACTIVE', 'PAST_DUE')",
                           name=op.f("ck_subscription_mrr_revisions_mrr_only_when_counted")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE",
                                name=op.f("fk_subscription_mrr_revisions_organization_id_organizations")),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_subscription_mrr_revisions_plan_id_plans")),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"], ondelete="CASCADE",
                                name=op.f("fk_subscription_mrr_revisions_subscription_id_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_mrr_revisions")),
        sa.UniqueConstraint("subscription_id", "valid_from", name=op.f("uq_mrr_revision_start")),
    )
    op.create_index("uq_subscription_mrr_revisions_open", "subscription_mrr_revisions", ["subscription_id"],
                    unique=True, sqlite_where=sa.text("valid_to IS NULL"),
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.create_index("ix_subscription_mrr_revisions_currency_from", "subscription_mrr_revisions",
                    ["currency", "valid_from"])
    # Subscriptions that exist already get one revision: their state now, from their creation.
    from billing_graphql.db.mrr_history import backfill

    backfill(op.get_bind(), datetime.now(UTC))


def downgrade() -> None:
    op.drop_index("ix_subscription_mrr_revisions_currency_from", table_name="subscription_mrr_revisions")
    op.drop_index("uq_subscription_mrr_revisions_open", table_name="subscription_mrr_revisions")
    op.drop_table("subscription_mrr_revisions")
