"""Credit notes (own gapless number series), what they credit on invoices, refunds paying them out

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0017"
down_revision = "0020"
branch_labels = None
depends_on = None

_PAID_WITHIN_DUE_OLD = "amount_paid >= 0 AND amount_paid <= total - credit_applied"
_PAID_WITHIN_DUE_NEW = "amount_paid >= 0 AND amount_paid + credited_against_due <= total - credit_applied"


def upgrade() -> None:
    op.create_table(
        "credit_note_number_sequences",
        sa.Column("month", sa.String(length=6), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("last_value >= 0", name=op.f("ck_credit_note_number_sequences_last_value_not_negative")),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_credit_note_number_sequences")),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Enum("ISSUED", "VOID", name="credit_note_status", native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column("reason", sa.Enum("DUPLICATE", "FRAUDULENT", "ORDER_CHANGE", "PRODUCT_UNSATISFACTORY", "OTHER",
                                    name="credit_note_reason", native_enum=False, create_constraint=True, length=32),
                  nullable=False),
        sa.Column("outcome", sa.Enum("REFUND", "CREDIT_BALANCE", "REDUCE_AMOUNT_DUE", name="credit_note_outcome",
                                     native_enum=False, create_constraint=True, length=32), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("tax_name", sa.String(length=100), nullable=True),
        sa.Column("tax_rate", billing_graphql.db.types.DecimalText(), nullable=True),
        sa.Column("tax_base_numerator", sa.Integer(), nullable=False),
        sa.Column("tax_base_denominator", sa.Integer(), nullable=False),
        sa.Column("created_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", billing_graphql.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("total = subtotal + tax", name=op.f("ck_credit_notes_total_adds_up")),
        sa.CheckConstraint("total > 0 AND subtotal >= 0 AND tax >= 0", name=op.f("ck_credit_notes_amounts_positive")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"],
                                name=op.f("fk_credit_notes_organization_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_notes_number")),
    )
    with op.batch_alter_table("credit_notes") as batch:
        batch.create_index(batch.f("ix_credit_notes_invoice_id"), ["invoice_id"], unique=False)
        batch.create_index("ix_credit_notes_org_created", ["organization_id", "created_at"], unique=False)
    op.create_table(
        "credit_note_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("credit_note_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_line_id", sa.Uuid(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_note_lines_amount_positive")),
        sa.ForeignKeyConstraint(["credit_note_id"], ["credit_notes.id"],
                                name=op.f("fk_credit_note_lines_credit_note_id_credit_notes"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invoice_line_id"], ["invoice_lines.id"],
                                name=op.f("fk_credit_note_lines_invoice_line_id_invoice_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note_lines")),
    )
    with op.batch_alter_table("credit_note_lines") as batch:
        batch.create_index(batch.f("ix_credit_note_lines_credit_note_id"), ["credit_note_id"], unique=False)
        batch.create_index(batch.f("ix_credit_note_lines_invoice_line_id"), ["invoice_line_id"], unique=False)

    with op.batch_alter_table("invoices") as batch:
        for name in ("amount_credited", "credited_against_due", "tax_credited"):
            batch.add_column(sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("marked_uncollectible_at", billing_graphql.db.types.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.drop_constraint(op.f("ck_invoices_paid_within_due"), type_="check")
        batch.create_check_constraint(op.f("ck_invoices_paid_within_due"), _PAID_WITHIN_DUE_NEW)
        batch.create_check_constraint(op.f("ck_invoices_credited_within_total"),
                                      "amount_credited >= 0 AND amount_credited <= total")
        batch.create_check_constraint(op.f("ck_invoices_credited_due_within_credited"),
                                      "credited_against_due >= 0 AND credited_against_due <= amount_credited")
        batch.create_check_constraint(
            op.f("ck_invoices_tax_credited_within_tax"),
            "tax_credited >= 0 AND tax_credited <= tax AND tax_credited <= amount_credited")
    with op.batch_alter_table("invoices") as batch:
        for name in ("amount_credited", "credited_against_due", "tax_credited"):
            batch.alter_column(name, server_default=None)

    with op.batch_alter_table("refunds") as batch:
        batch.add_column(sa.Column("credit_note_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(op.f("fk_refunds_credit_note_id_credit_notes"), "credit_notes",
                                 ["credit_note_id"], ["id"])
        batch.create_index(batch.f("ix_refunds_credit_note_id"), ["credit_note_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds") as batch:
        batch.drop_index(batch.f("ix_refunds_credit_note_id"))
        batch.drop_constraint(op.f("fk_refunds_credit_note_id_credit_notes"), type_="foreignkey")
        batch.drop_column("credit_note_id")
    with op.batch_alter_table("invoices") as batch:
        batch.drop_constraint(op.f("ck_invoices_tax_credited_within_tax"), type_="check")
        batch.drop_constraint(op.f("ck_invoices_credited_due_within_credited"), type_="check")
        batch.drop_constraint(op.f("ck_invoices_credited_within_total"), type_="check")
        batch.drop_constraint(op.f("ck_invoices_paid_within_due"), type_="check")
        batch.create_check_constraint(op.f("ck_invoices_paid_within_due"), _PAID_WITHIN_DUE_OLD)
        for name in ("marked_uncollectible_at", "tax_credited", "credited_against_due", "amount_credited"):
            batch.drop_column(name)
    op.drop_table("credit_note_lines")
    op.drop_table("credit_notes")
    op.drop_table("credit_note_number_sequences")
