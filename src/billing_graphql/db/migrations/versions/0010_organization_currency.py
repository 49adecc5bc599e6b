"""organizations.currency: what an organization is billed in (its default plan and offered plans)

Revision ID: 0010
Revises: 0009_billing_details
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009_billing_details"
branch_labels = None
depends_on = None

# domain.money's currencies when this revision was written (a later currency needs a revision).
KNOWN = ("BHD", "EUR", "GBP", "IDR", "INR", "JPY", "KRW", "KWD", "MYR", "SGD", "USD")


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=False, server_default="IDR"))
    # An organization already billed keeps its currency: its latest subscription's plan's, else its
    # account credit's, else IDR.
    op.execute(
        "UPDATE organizations SET currency = COALESCE("
        "(SELECT plans.currency FROM subscriptions JOIN plans ON plans.id = subscriptions.plan_id "
        " WHERE subscriptions.organization_id = organizations.id "
        " ORDER BY subscriptions.created_at DESC LIMIT 1), credit_currency, 'IDR')"
    )
    with op.batch_alter_table("organizations") as batch:
        batch.create_check_constraint(
            op.f("ck_organizations_currency_known"), "currency IN (" + ", ".join(f"'{code}'" for code in KNOWN) + ")")


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_constraint(op.f("ck_organizations_currency_known"), type_="check")
        batch.drop_column("currency")
