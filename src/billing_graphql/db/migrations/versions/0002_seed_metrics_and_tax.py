"""Reference data every database needs: the metric catalog and PPN for IDR.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import billing_graphql.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

METRICS = [
    ("agents", "Agents", "GAUGE", "agent"),
    ("contacts", "Contacts", "GAUGE", "contact"),
    ("messages", "Messages", "COUNTER", "message"),
    ("channels", "Channels", "GAUGE", "channel"),
    ("ai_agents", "AI agents", "GAUGE", "agent"),
    ("integrations", "Integrations", "GAUGE", "integration"),
    ("api_calls", "API calls", "COUNTER", "call"),
]

metrics = sa.table(
    "metrics",
    sa.column("id", sa.Uuid()),
    sa.column("code", sa.String()),
    sa.column("name", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("unit", sa.String()),
    sa.column("created_at", billing_graphql.db.types.UTCDateTime()),
)
tax_rates = sa.table(
    "tax_rates",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("rate", sa.String()),
    sa.column("base_numerator", sa.Integer()),
    sa.column("base_denominator", sa.Integer()),
    sa.column("currency", sa.String()),
    sa.column("country", sa.String()),
    sa.column("effective_from", billing_graphql.db.types.UTCDateTime()),
    sa.column("created_at", billing_graphql.db.types.UTCDateTime()),
)


def upgrade() -> None:
    now = datetime.now(UTC)
    op.bulk_insert(
        metrics,
        [
            {"id": uuid.uuid4(), "code": code, "name": name, "kind": kind, "unit": unit, "created_at": now}
            for code, name, kind, unit in METRICS
        ],
    )
    # PPN 12% on a base of 11/12 of the price (PMK 131/2024): 11% effective.
    op.bulk_insert(
        tax_rates,
        [
            {
                "id": uuid.uuid4(),
                "name": "PPN",
                "rate": "0.12",
                "base_numerator": 11,
                "base_denominator": 12,
                "currency": "IDR",
                "country": "ID",
                "effective_from": datetime(2025, 1, 1, tzinfo=UTC),
                "created_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.execute(tax_rates.delete().where(tax_rates.c.name == "PPN"))
    op.execute(metrics.delete().where(metrics.c.code.in_([code for code, *_ in METRICS])))
