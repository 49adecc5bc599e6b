"""An event's data (``webhooks.objects.event_data``) is JSON-safe as it is made, so the outbox
stores it without a second pass: what ``to_json`` would have made of any value is made by the
event's own scalars, and ``to_json`` takes the data as it is."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.services.platform.audit import to_json
from billing_graphql.services.webhooks.objects import event_data

AT = datetime(2026, 2, 5, 7, 30, tzinfo=timezone(timedelta(hours=7)))


def _refund() -> SimpleNamespace:
    return SimpleNamespace(id=uuid.uuid4(), status=InvoiceStatus.PAID, reason=None, created_at=AT, amount=150000,
                           currency="IDR")


def test_event_data_is_json_safe_as_made_and_to_json_takes_it_as_it_is():
    data = event_data("Refund", _refund(), ids={"invoice_id": "Invoice"}, invoice_id=uuid.uuid4(),
                      day=date(2026, 2, 5), tags=frozenset({"a"}), rate=Decimal("0.12"), ratio=0.5)
    assert data["day"] == "2026-02-05" and data["tags"] == ["a"] and data["rate"] == "0.12"
    assert data["object"]["createdAt"] == "2026-02-05T00:30:00Z"  # UTC, whatever the zone given
    assert to_json(data) is data
    assert json.loads(json.dumps(data)) == data  # nothing the outbox's JSON could not hold


def test_an_instant_shown_again_in_another_zone_is_shown_in_utc():
    first = event_data("Refund", _refund())["object"]["createdAt"]
    again = event_data("Refund", SimpleNamespace(**{**vars(_refund()), "created_at": AT.astimezone(UTC)}))
    assert first == again["object"]["createdAt"] == "2026-02-05T00:30:00Z"


def test_to_json_still_copies_plain_payloads():
    payload = {"id": uuid.UUID(int=1), "nested": {"at": AT}}
    converted = to_json(payload)
    assert converted is not payload
    assert converted == {"id": str(uuid.UUID(int=1)), "nested": {"at": AT.isoformat()}}
