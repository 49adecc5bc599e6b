"""The role table extended to subscriptions: every subscription root field, every role, FORBIDDEN or not
(over a real socket), as tests/api/test_role_table.py does for queries and mutations."""

from __future__ import annotations

import pytest
from graphql import build_schema

from tests.api.test_role_table import ID, MANAGERS, READERS, ROLES, SA, PARTNER
from tests.api.test_schema_file import SCHEMA_FILE
from tests.helpers import make_keys
from tests.live.conftest import LiveClient

SUBSCRIPTION_ROLE_TABLE: dict[str, tuple[str, frozenset[str]]] = {
    "billingEvents": ("subscription { billingEvents { id } }", MANAGERS),
    "usageUpdated": ("subscription { usageUpdated { used } }", READERS),
    "invoiceUpdated": (f"subscription {{ invoiceUpdated(id: {ID}) {{ id }} }}", MANAGERS),
    "usageSnapshotsUpdated": ("subscription { usageSnapshotsUpdated(organizationIds: []) { month } }",
                              frozenset({SA, PARTNER})),
}


def test_the_table_covers_every_subscription_field():
    schema = build_schema(SCHEMA_FILE.read_text())
    assert set(schema.subscription_type.fields) == set(SUBSCRIPTION_ROLE_TABLE)


@pytest.mark.parametrize("field", sorted(SUBSCRIPTION_ROLE_TABLE))
async def test_subscription_role_table(db, live_server, field):
    keys = await make_keys(db)
    document, allowed = SUBSCRIPTION_ROLE_TABLE[field]
    seen = {}
    for role in ROLES:
        client = await (await LiveClient.open(live_server.ws_url, getattr(keys, role))).acked()
        await client.subscribe("1", document)
        try:
            message = await client.receive(timeout=0.8)
        except TimeoutError:
            message = None  # subscribed, waiting for changes
        finally:
            await client.close()
        errors = (message or {}).get("payload", {}).get("errors") or [] if message and message["type"] == "next" \
            else (message or {}).get("payload") or [] if message and message["type"] == "error" else []
        codes = {error.get("extensions", {}).get("code") for error in errors}
        assert "UNAUTHENTICATED" not in codes, (role, message)
        seen[role] = "FORBIDDEN" not in codes
        if seen[role]:  # allowed: at most the caller's own mistake (no organization named, no such invoice)
            assert codes <= {"BAD_USER_INPUT"}, (role, message)
    assert {role for role, ok in seen.items() if ok} == allowed, seen
