"""organizations.portal_session_epoch: revokeBillingPortalSessions ends every portal link issued before

A portal link carries the epoch of its organization when it was issued; revoking the sessions
raises the epoch, and a link whose epoch is below it is refused.

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("portal_session_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint(op.f("ck_organizations_portal_session_epoch_not_negative"), "portal_session_epoch >= 0")


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_constraint(op.f("ck_organizations_portal_session_epoch_not_negative"), type_="check")
        batch.drop_column("portal_session_epoch")
