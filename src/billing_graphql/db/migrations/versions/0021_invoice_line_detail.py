"""invoice_lines.detail: what a line bills, as structure (plan, add-on or metric name, billing
period, included units, proration), so a document renders the line in its own language; the
English ``description`` stays as written (the API's ``description``).

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("detail")
