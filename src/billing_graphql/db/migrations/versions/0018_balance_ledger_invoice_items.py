"""The account balance's ledger (credit_balance_transactions, organizations.credit_sequence) and
one-off charges (invoice_items, invoice line kind ONE_OFF)

An organization already holding credit gets an opening entry (ADJUSTMENT, "opening balance"), so
its balance is the sum of its ledger from the start.

Revision ID: 0018
Revises: 0017 (0014 on its own branch; chained after the credit notes once merged)
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LINE_KINDS = ("PLAN", "SEATS", "ADDON", "OVERAGE", "PRORATION_CREDIT", "PRORATION_CHARGE", "DISCOUNT")
SOURCES = ("DOWNGRADE", "CREDIT_NOTE", "ADJUSTMENT", "INVOICE_APPLIED")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("credit_sequence", sa.BigInteger(), nullable=False, server_default="0"))

    ledger = op.create_table(
        "credit_balance_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("previous_sequence", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_before", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.Enum(*SOURCES, name="credit_source", native_enum=False, create_constraint=True,
                                    length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_credit_balance_transactions_amount_not_zero")),
        sa.CheckConstraint("balance_after = balance_before + amount",
                           name=op.f("ck_credit_balance_transactions_balance_adds_up")),
        sa.CheckConstraint("balance_before >= 0 AND balance_after >= 0",
                           name=op.f("ck_credit_balance_transactions_balance_not_negative")),
        sa.CheckConstraint(
            "(sequence = 1 AND previous_sequence IS NULL AND balance_before = 0)"
            " OR (sequence > 1 AND previous_sequence = sequence - 1)",
            name=op.f("ck_credit_balance_transactions_chained")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_credit_balance_transactions_organization_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_credit_balance_transactions_invoice_id_invoices"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["organization_id", "previous_sequence", "balance_before"],
            ["credit_balance_transactions.organization_id", "credit_balance_transactions.sequence",
             "credit_balance_transactions.balance_after"],
            name="fk_credit_balance_transactions_previous"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_balance_transactions")),
        sa.UniqueConstraint("organization_id", "sequence", name="uq_credit_balance_transactions_sequence"),
        sa.UniqueConstraint("organization_id", "sequence", "balance_after",
                            name="uq_credit_balance_transactions_chain_link"),
    )

    # The opening entry of every organization already holding credit.
    connection = op.get_bind()
    holders = connection.execute(sa.text(
        "SELECT id, credit_balance, credit_currency, currency FROM organizations WHERE credit_balance > 0"
    )).all()
    now = datetime.now(UTC)
    organizations = sa.table("organizations", sa.column("id", sa.Uuid()), sa.column("credit_sequence", sa.BigInteger()))
    for organization_id, balance, credit_currency, currency in holders:
        organization_id = organization_id if isinstance(organization_id, uuid.UUID) else uuid.UUID(str(organization_id))
        op.bulk_insert(ledger, [{
            "id": uuid.uuid4(), "organization_id": organization_id, "sequence": 1, "previous_sequence": None,
            "amount": balance, "balance_before": 0, "balance_after": balance,
            "currency": credit_currency or currency, "source": "ADJUSTMENT", "reason": "opening balance",
            "invoice_id": None, "created_at": now,
        }])
        connection.execute(organizations.update().where(organizations.c.id == organization_id)
                           .values(credit_sequence=1))
    with op.batch_alter_table("organizations") as batch:
        batch.create_check_constraint(
            op.f("ck_organizations_credit_has_ledger"),
            "credit_sequence >= 0 AND (credit_sequence > 0 OR credit_balance = 0)")

    op.create_table(
        "invoice_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("deleted_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("unit_amount > 0", name=op.f("ck_invoice_items_unit_amount_positive")),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_invoice_items_quantity_positive")),
        sa.CheckConstraint("amount = unit_amount * quantity", name=op.f("ck_invoice_items_amount_adds_up")),
        sa.CheckConstraint("deleted_at IS NULL OR invoice_id IS NULL",
                           name=op.f("ck_invoice_items_deleted_while_pending")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_invoice_items_organization_id_organizations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_items_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_items")),
    )
    with op.batch_alter_table("invoice_items") as batch:
        batch.create_index("ix_invoice_items_invoice_id", ["invoice_id"], unique=False)
        batch.create_index("ix_invoice_items_org_created", ["organization_id", "created_at"], unique=False)

    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_constraint(op.f("ck_invoice_lines_invoice_line_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_invoice_lines_invoice_line_kind"), _kinds(LINE_KINDS + ("ONE_OFF",)))


def downgrade() -> None:
    op.execute("DELETE FROM invoice_lines WHERE kind = 'ONE_OFF'")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_constraint(op.f("ck_invoice_lines_invoice_line_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_invoice_lines_invoice_line_kind"), _kinds(LINE_KINDS))
    op.drop_table("invoice_items")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_constraint(op.f("ck_organizations_credit_has_ledger"), type_="check")
        batch.drop_column("credit_sequence")
    op.drop_table("credit_balance_transactions")
