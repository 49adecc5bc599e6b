"""billing_details.language: the language of the organization's documents (en or id)

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billing_details") as batch:
        batch.add_column(sa.Column("language", sa.String(length=8), server_default="en", nullable=False))
        batch.create_check_constraint(op.f("ck_billing_details_language_known"), "language IN ('en', 'id')")


def downgrade() -> None:
    with op.batch_alter_table("billing_details") as batch:
        batch.drop_constraint(op.f("ck_billing_details_language_known"), type_="check")
        batch.drop_column("language")
