"""MRR revisions of one instant: a sequence number, so a churn at the instant a revision began
keeps it (a subscription canceled the moment it started is new and churned)

Revision ID: 0012
Revises: 0009_billing_details
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscription_mrr_revisions") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch.drop_constraint(op.f("uq_mrr_revision_start"), type_="unique")
        batch.create_unique_constraint(op.f("uq_mrr_revision_start"), ["subscription_id", "valid_from", "seq"])
        batch.drop_constraint(op.f("ck_subscription_mrr_revisions_valid_ordered"), type_="check")
        batch.create_check_constraint(op.f("ck_subscription_mrr_revisions_valid_ordered"),
                                      "valid_to IS NULL OR valid_to >= valid_from")
        batch.create_check_constraint(op.f("ck_subscription_mrr_revisions_seq_not_negative"), "seq >= 0")


def downgrade() -> None:
    op.execute("DELETE FROM subscription_mrr_revisions WHERE valid_to = valid_from")
    with op.batch_alter_table("subscription_mrr_revisions") as batch:
        batch.drop_constraint(op.f("ck_subscription_mrr_revisions_seq_not_negative"), type_="check")
        batch.drop_constraint(op.f("ck_subscription_mrr_revisions_valid_ordered"), type_="check")
        batch.create_check_constraint(op.f("ck_subscription_mrr_revisions_valid_ordered"),
                                      "valid_to IS NULL OR valid_to > valid_from")
        batch.drop_constraint(op.f("uq_mrr_revision_start"), type_="unique")
        batch.create_unique_constraint(op.f("uq_mrr_revision_start"), ["subscription_id", "valid_from"])
        batch.drop_column("seq")
