"""billing run: the trial-will-end notice is sent once; due retries are found by index

Revision ID: 0006_billing_run
Revises: 0005_usage
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0006_billing_run"
down_revision = "0005_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("trial_will_end_sent_at", billing_graphql.db.types.UTCDateTime(timezone=True),
                                   nullable=True))
    op.create_index("ix_subscriptions_next_retry_at", "subscriptions", ["next_retry_at"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_next_retry_at", table_name="subscriptions")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("trial_will_end_sent_at")
