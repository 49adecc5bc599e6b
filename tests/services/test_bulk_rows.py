"""``db.bulk``: rows written and changed at once (a COPY and an UPDATE from arrays on PostgreSQL,
executemany on SQLite) read back exactly as the ORM writes them, change only what they are told
to, and fail whole."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing_graphql.db.bulk import insert_rows, update_rows
from billing_graphql.db.models import InvoiceLine, InvoiceLineKind, Organization, OutboxEvent
from billing_graphql.services.platform.audit import to_json
from tests.factories import USAGE_TIERS, Line, make_invoice, make_organization
from tests.helpers import T0


def _columns(row: object) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in type(row).__table__.columns}


async def test_rows_written_at_once_read_back_as_the_orm_wrote_them(db) -> None:
    organization = await make_organization(db)
    invoice = await make_invoice(db, organization.id, lines=[
        Line("Messages, tiered", 470_000, quantity=Decimal("5000"), kind=InvoiceLineKind.USAGE,
             tier_breakdown=USAGE_TIERS),
        Line("Seats, 7 days of 31", 11_290, quantity=Decimal("0.2258")),
    ])
    async with db.read() as session:
        written = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                         .order_by(InvoiceLine.position))).all()
        originals = [_columns(line) for line in written]
    copies = [{**line, "id": uuid.uuid4(), "position": line["position"] + 10} for line in originals]
    event = {"id": uuid.uuid4(), "organization_id": organization.id, "event_type": "invoice.created",
             "payload": to_json({"object": {"name": "Kedai Kopi \u2615", "amount": "470000", "lines": [1, None]}}),
             "created_at": T0 + timedelta(microseconds=7), "dispatched_at": None}
    async with db.write() as session:
        await insert_rows(session, InvoiceLine.__table__, copies)
        await insert_rows(session, OutboxEvent.__table__, [event])
        await insert_rows(session, OutboxEvent.__table__, [])  # nothing to write: no statement, no error
    async with db.read() as session:
        read = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                      .order_by(InvoiceLine.position))).all()
        stored_event = _columns(await session.get(OutboxEvent, event["id"]))
    assert [_columns(line) for line in read] == originals + copies
    assert read[2].quantity == Decimal("5000") and read[2].tier_breakdown == USAGE_TIERS
    assert read[3].quantity == Decimal("0.2258") and read[3].kind is InvoiceLineKind.PLAN
    assert stored_event == event
    assert stored_event["created_at"].utcoffset() == timedelta(0)


async def test_rows_changed_at_once_change_only_those_rows_and_columns(db) -> None:
    first, second, third = [await make_organization(db, name) for name in ("Satu", "Dua", "Tiga")]
    later = T0 + timedelta(days=1)
    async with db.write() as session:
        await update_rows(session, Organization.__table__, [
            {"id": first.id, "name": "Satu Baru", "updated_at": later},
            {"id": third.id, "name": "Tiga Baru", "updated_at": later + timedelta(seconds=1)},
        ], ["name", "updated_at"])
        await update_rows(session, Organization.__table__, [{"id": second.id, "name": "x"}], [])  # no columns
    async with db.read() as session:
        rows = {row.id: row for row in await session.scalars(select(Organization))}
    assert (rows[first.id].name, rows[first.id].updated_at) == ("Satu Baru", later)
    assert (rows[third.id].name, rows[third.id].updated_at) == ("Tiga Baru", later + timedelta(seconds=1))
    assert (rows[second.id].name, rows[second.id].updated_at) == ("Dua", T0)
    assert rows[first.id].external_id == first.external_id  # a column not named is left alone
    assert rows[first.id].created_at == T0


async def test_a_set_that_breaks_a_constraint_writes_none_of_its_rows(db) -> None:
    organization = await make_organization(db)
    taken = uuid.uuid4()
    row = {"organization_id": organization.id, "event_type": "invoice.created", "payload": to_json({}),
           "created_at": T0, "dispatched_at": None}
    async with db.write() as session:
        await insert_rows(session, OutboxEvent.__table__, [{**row, "id": taken}])
    fresh = uuid.uuid4()
    with pytest.raises(Exception) as raised:
        async with db.write() as session:
            await insert_rows(session, OutboxEvent.__table__, [{**row, "id": fresh}, {**row, "id": taken}])
    assert "duplicate" in str(raised.value).lower() or "unique" in str(raised.value).lower()
    async with db.read() as session:
        ids = set(await session.scalars(select(OutboxEvent.id)))
    assert ids == {taken}
