"""Every operation in queries/ runs against the demo data with no errors and the SQL statement
count its header declares, so an N+1 cannot come back unseen. The app runs as ``serve`` starts it: a
query is answered by its compiled plan (the test requires it), so the declared counts are the compiled
path's; the generic path's are checked against them in tests/perf/test_compiled_path.py (never fewer)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from strawberry import relay

from billing_graphql.db.models import Addon, Coupon, Invoice, Organization, Plan
from billing_graphql.demo import DEMO_ORGANIZATION_EXTERNAL_ID
from billing_graphql.domain.roles import Role
from tests.demo_snapshot import demo_keys
from tests.helpers import T0, count_statements

QUERIES = Path(__file__).resolve().parents[2] / "queries"
FILES = sorted(QUERIES.rglob("*.graphql"))
DEFAULT_ROLE = {"spa": Role.OWNER, "admin": Role.SUPER_ADMIN, "partner": Role.PARTNER}
HEADER = re.compile(r"^#\s*(role|variables|statements-postgresql|statements):\s*(.+)$", re.MULTILINE)


def header(path: Path) -> dict[str, str]:
    return {key: value.strip() for key, value in HEADER.findall(path.read_text())}


def test_there_are_operations_for_each_client():
    assert {path.parent.name for path in FILES} >= {"spa", "admin"}


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(QUERIES)) for p in FILES])
def test_each_file_declares_one_named_operation_and_its_statements(path):
    text = path.read_text()
    operations = re.findall(r"^(query|mutation)\s+(\w+)", text, re.MULTILINE)
    assert len(operations) == 1, f"{path.name}: exactly one named operation"
    assert operations[0][1] == path.stem, f"{path.name}: the operation is named after its file"
    assert "statements" in header(path), f"{path.name}: declare '# statements: N'"


async def _substitutions(db) -> dict[str, str]:
    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID)
        )
        plans = (await session.execute(select(Plan.slug, Plan.id))).all()
        addons = (await session.execute(select(Addon.slug, Addon.id))).all()
        coupons = (await session.execute(select(Coupon.code, Coupon.id))).all()
        invoice_id = await session.scalar(
            select(Invoice.id).where(Invoice.organization_id == organization_id).order_by(Invoice.created_at).limit(1)
        )
    values = {"@organization": relay.to_base64("Organization", organization_id),
              "@invoice": relay.to_base64("Invoice", invoice_id)}
    values.update({f"@plan:{slug}": relay.to_base64("Plan", plan_id) for slug, plan_id in plans})
    values.update({f"@addon:{slug}": relay.to_base64("Addon", addon_id) for slug, addon_id in addons})
    values.update({f"@coupon:{code}": relay.to_base64("Coupon", coupon_id) for code, coupon_id in coupons})
    return values


async def _webhook_substitutions(db) -> dict[str, str]:
    """An endpoint of the demo organization with one delivery (a test event), for the webhook files."""
    from billing_graphql.domain.actors import Actor
    from billing_graphql.services.webhooks import deliveries, endpoints

    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID)
        )
    owner = Actor(role=Role.OWNER, organization_id=organization_id, subject="test:owner")
    endpoint, _ = await endpoints.create_endpoint(db, owner, url="http://127.0.0.1:9/hooks", events=["*"],
                                                  description="", organization_id=None, production=False, now=T0)
    delivery = await deliveries.send_test(db, owner, endpoint.id, now=T0)
    return {"@webhookEndpoint": relay.to_base64("WebhookEndpoint", endpoint.id),
            "@webhookDelivery": relay.to_base64("WebhookDelivery", delivery.id)}


async def _demo_organization_id(db):
    async with db.read() as session:
        return await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID)
        )


async def _invoice_item_substitutions(db) -> dict[str, str]:
    """A pending invoice item of the demo organization, for DeleteInvoiceItem."""
    from decimal import Decimal

    from billing_graphql.services.billing.invoice_items import ItemInput, create_invoice_item

    item = await create_invoice_item(db, None, organization_id=await _demo_organization_id(db),
                                     item=ItemInput("Setup fee", Decimal("500000")), idempotency_key=None, now=T0)
    return {"@invoiceItem": relay.to_base64("InvoiceItem", item.id)}


async def _open_invoice_substitution(db) -> dict[str, str]:
    """An OPEN invoice of the demo organization (the demo's own are paid), for void and bad debt."""
    from billing_graphql.domain.status import InvoiceStatus
    from tests.factories import make_invoice

    invoice = await make_invoice(db, await _demo_organization_id(db), status=InvoiceStatus.OPEN,
                                 number="INV-202601-000900")
    return {"@openInvoice": relay.to_base64("Invoice", invoice.id)}


def _substitute(value, values):
    if isinstance(value, str):
        return values.get(value, value)
    if isinstance(value, dict):
        return {key: _substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    return value


async def seeded_request(db, settings, path: Path) -> tuple[Role, dict, str]:
    """The demo data, and the role, variables and API key a file's header asks for."""
    keys = await demo_keys(db, settings)
    meta = header(path)
    role = Role(meta["role"]) if "role" in meta else DEFAULT_ROLE[path.parent.name]
    values = await _substitutions(db)
    if "@webhook" in meta.get("variables", ""):
        values.update(await _webhook_substitutions(db))
    if "@invoiceItem" in meta.get("variables", ""):
        values.update(await _invoice_item_substitutions(db))
    if "@openInvoice" in meta.get("variables", ""):
        values.update(await _open_invoice_substitution(db))
    return role, _substitute(json.loads(meta.get("variables", "{}")), values), keys[role]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(QUERIES)) for p in FILES])
async def test_operation_runs_with_declared_statement_count(api, db, settings, path):
    role, variables, token = await seeded_request(db, settings, path)
    # Warm up once with a harmless query: the key's first use records last_used_at.
    # (A partner key may read usageSnapshots only.)
    warm_up = "{ usageSnapshots(first: 1) { edges { cursor } } }" if role is Role.PARTNER else "{ clock { now } }"
    await api.ok(warm_up, token=token)
    compiled = api.app.state.compiled
    answered = compiled.answered
    with count_statements(db) as counter:
        data = await api.ok(path.read_text(), variables, token=token)
    if re.search(r"^query\s", path.read_text(), re.MULTILINE):
        # The declared count is the compiled path's, the one that runs: it answered this query from its plan.
        assert compiled.answered == answered + 1, f"{path.name} ran on the generic path"
    for payload in data.values():
        if isinstance(payload, dict) and "errors" in payload:
            assert payload["errors"] == [], payload["errors"]  # the declared count is of a success
    meta = header(path)
    # A mutation that takes the organization's lock sends its SELECT ... FOR UPDATE on PostgreSQL only
    # (SQLite's BEGIN IMMEDIATE is the lock): such a file declares that count too.
    expected = meta["statements"] if db.is_sqlite else meta.get("statements-postgresql", meta["statements"])
    assert counter.count == int(expected), "\n".join(counter.statements)
