"""Indexes for the revenue analytics' money statement (``services.analytics.report._MONEY``), which read every
invoice, payment and refund of the database on each report: open invoices by currency (the outstanding
amount), uncollectible ones by currency and the instant they were marked (bad debt per month), payments and
refunds by currency and creation (each month's cash). Partial where the report asks for one status.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OPEN = "status = 'OPEN'"
UNCOLLECTIBLE = "status = 'UNCOLLECTIBLE'"


def upgrade() -> None:
    op.create_index("ix_invoices_open_currency", "invoices", ["currency"],
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.create_index("ix_invoices_uncollectible_currency_marked", "invoices", ["currency", "marked_uncollectible_at"],
                    sqlite_where=sa.text(UNCOLLECTIBLE), postgresql_where=sa.text(UNCOLLECTIBLE))
    op.create_index("ix_payments_currency_created", "payments", ["currency", "created_at"])
    op.create_index("ix_refunds_currency_created", "refunds", ["currency", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_refunds_currency_created", "refunds")
    op.drop_index("ix_payments_currency_created", "payments")
    op.drop_index("ix_invoices_uncollectible_currency_marked", "invoices")
    op.drop_index("ix_invoices_open_currency", "invoices")
