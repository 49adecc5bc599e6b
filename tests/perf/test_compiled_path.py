"""The compiled path (``graphql.compiled``) answers every registered query byte for byte as the
generic path does, on both databases: on the demo data for every query of ``queries/``, and on
invoices pages drawn by Hypothesis (empty lists, nulls, zero- and three-decimal currencies)."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from strawberry import relay

from billing_graphql.db.engine import Database
from billing_graphql.db.models import PaymentStatus
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.domain.invoices import InvoiceLineKind
from billing_graphql.domain.roles import Role
from billing_graphql.graphql.persisted import QUERIES_DIR, document_id
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.platform.organizations import create_organization
from tests.api.test_queries_dir import seeded_request
from tests.conftest import app_on
from tests.factories import Line, make_invoice, make_payment, make_refund
from tests.helpers import T0, count_statements, test_settings

QUERY_FILES = [path for path in sorted(QUERIES_DIR.rglob("*.graphql")) if path.read_text().find("\nquery ") >= 0
               or path.read_text().startswith("query ")]
INVOICES = (QUERIES_DIR / "spa" / "Invoices.graphql").read_text()


@asynccontextmanager
async def two_paths(db: Database, settings, schema):
    """HTTP clients on the same database: one app with the compiled plans, one without."""
    compiled_app = app_on(db, settings, schema)
    generic_app = app_on(db, test_settings(settings.database_url, compiled_documents=False), schema)
    assert compiled_app.state.compiled is not None and generic_app.state.compiled is None
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=compiled_app), base_url="http://test") as compiled,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=generic_app), base_url="http://test") as generic,
    ):
        yield compiled_app.state.compiled, compiled, generic


async def both(compiled_documents, compiled, generic, body: dict, token: str, db: Database) -> tuple[bytes, bytes]:
    """The two answers; fails unless the compiled app answered from its plan, with no more SQL
    statements than the generic path."""
    headers = {"authorization": f"Bearer {token}"}
    await generic.post("/graphql", json={"query": "{ viewer { role } }"}, headers=headers)  # the key's first use
    answered = compiled_documents.answered
    with count_statements(db) as by_plan_statements:
        by_plan = await compiled.post("/graphql", json=body, headers=headers)
    assert compiled_documents.answered == answered + 1, "the compiled app did not answer from its plan"
    with count_statements(db) as generic_statements:
        by_graphql_core = await generic.post("/graphql", json=body, headers=headers)
    assert by_plan_statements.count <= generic_statements.count, (by_plan_statements.statements,
                                                                  generic_statements.statements)
    assert by_plan.status_code == by_graphql_core.status_code == 200
    assert by_plan.headers["content-type"] == by_graphql_core.headers["content-type"]
    return by_plan.content, by_graphql_core.content


def test_every_registered_query_is_compiled(graphql_schema):
    from billing_graphql.graphql.schema import compiled_documents

    documents = compiled_documents(graphql_schema, test_settings("sqlite+aiosqlite://"))
    assert sorted(plan.name for plan in documents.by_id.values()) == sorted(path.stem for path in QUERY_FILES)
    assert all("only queries are compiled" in reason for reason in documents.skipped.values())


@pytest.mark.parametrize("path", QUERY_FILES, ids=[str(p.relative_to(QUERIES_DIR)) for p in QUERY_FILES])
async def test_the_plan_answers_byte_for_byte_as_graphql_core(db, settings, graphql_schema, path):
    _, variables, token = await seeded_request(db, settings, path)
    body = path.read_text()
    async with two_paths(db, settings, graphql_schema) as (documents, compiled, generic):
        by_plan, by_graphql_core = await both(documents, compiled, generic, {"query": body, "variables": variables},
                                              token, db)
        assert by_plan == by_graphql_core
        assert b'"errors"' not in by_plan
        by_id, _ = await both(documents, compiled, generic, {"documentId": document_id(body), "variables": variables},
                              token, db)
        assert by_id == by_plan


async def test_every_argument_of_the_invoices_page_answers_the_same(db, settings, graphql_schema, keys):
    """Scopes (a tenant, another tenant's id, a super-admin across organizations or for one), status,
    page size and cursors: the SQL plan pages and filters as the resolver does."""
    from tests.api.test_invoices_api import seed_invoices

    await seed_invoices(db, keys.organization_id, 7, lines=2)
    await seed_invoices(db, keys.other_organization_id, 4, lines=1)
    await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, created_at=T0 + timedelta(hours=9))
    acme, globex = (relay.to_base64("Organization", key) for key in (keys.organization_id,
                                                                     keys.other_organization_id))
    cases = [
        (keys.owner, {}), (keys.owner, {"first": 3}), (keys.owner, {"first": 0}),
        (keys.owner, {"first": 3, "after": relay.to_base64("offset", 2)}),
        (keys.owner, {"first": 3, "after": relay.to_base64("offset", 40)}),
        (keys.owner, {"status": "OPEN"}), (keys.owner, {"status": "VOID"}),
        (keys.admin, {"organizationId": acme}), (keys.owner, {"organizationId": globex}),
        (keys.owner, {"organizationId": "not-an-id"}),
        (keys.super_admin, {"first": 20}), (keys.super_admin, {"organizationId": globex, "first": 2}),
        (keys.super_admin, {"organizationId": globex, "status": "PAID"}),
    ]
    async with two_paths(db, settings, graphql_schema) as (documents, compiled, generic):
        for token, variables in cases:
            by_plan, by_graphql_core = await both(documents, compiled, generic,
                                                  {"query": INVOICES, "variables": variables}, token, db)
            assert by_plan == by_graphql_core, variables
            assert b'"errors"' not in by_plan


async def test_requests_the_plan_cannot_answer_take_the_generic_path(db, settings, graphql_schema, keys):
    """Refusals, bad variables and refused input come from graphql-core, as without plans."""
    async with two_paths(db, settings, graphql_schema) as (documents, compiled, generic):
        cases = [
            ({"query": INVOICES}, keys.member),  # MEMBER: FORBIDDEN
            ({"query": INVOICES}, "bgk_not-a-key"),  # refused credentials
            ({"query": INVOICES, "variables": {"first": "ten"}}, keys.owner),  # does not coerce
            ({"query": INVOICES, "variables": {"first": 500}}, keys.owner),  # out of range: the resolver raises
            ({"query": INVOICES, "variables": {"after": "bad\x00cursor"}}, keys.owner),  # control character
            ({"query": INVOICES, "variables": {"status": "LOST"}}, keys.owner),  # not an enum value
        ]
        for body, token in cases:
            fallbacks = documents.fallbacks
            headers = {"authorization": f"Bearer {token}"}
            answer = await compiled.post("/graphql", json=body, headers=headers)
            expected = await generic.post("/graphql", json=body, headers=headers)
            assert documents.fallbacks == fallbacks + 1, body
            assert answer.content == expected.content and b'"errors"' in answer.content, body


# -- Hypothesis: invoices pages of every shape -------------------------------------------------------

CURRENCIES = ["IDR", "USD", "JPY", "KWD", "EUR"]  # zero, two and three decimals
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=30)


@st.composite
def invoice(draw) -> dict:
    """An invoice the database accepts: positive lines, perhaps a smaller credit, a discount within the
    subtotal, payments within the total, refunds within a payment."""
    lines = draw(st.lists(st.builds(
        Line, description=text, amount=st.integers(min_value=0, max_value=10**10),
        quantity=st.sampled_from([Decimal(1), Decimal(3), Decimal("0.5"), Decimal(7)]),
        kind=st.sampled_from([InvoiceLineKind.PLAN, InvoiceLineKind.SEATS, InvoiceLineKind.ADDON, InvoiceLineKind.OVERAGE]),
    ), min_size=1, max_size=3))
    subtotal = sum(line.amount for line in lines)
    if subtotal and draw(st.booleans()):
        lines.append(Line(draw(text), -draw(st.integers(min_value=1, max_value=subtotal)), Decimal(1),
                          InvoiceLineKind.PRORATION_CREDIT))
    subtotal = sum(line.amount for line in lines)
    status = draw(st.sampled_from([InvoiceStatus.DRAFT, InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.VOID]))
    return {
        "currency": draw(st.sampled_from(CURRENCIES)),
        "status": status,
        "lines": lines,
        "discount": draw(st.integers(min_value=0, max_value=subtotal)),
        "tax_rate": draw(st.sampled_from([None, Decimal("0.12"), Decimal("0.075"), Decimal("0")])),
        "payments": draw(st.lists(st.sampled_from(list(PaymentStatus)), max_size=2)) if status is InvoiceStatus.PAID
        else [],
        "refund": draw(st.one_of(st.none(), st.tuples(st.fractions(0, 1), st.one_of(st.none(), text)))),
        "minutes": draw(st.integers(min_value=0, max_value=10**6)),
    }


async def _invoices_page_on_both_paths(database_url: str, schema, invoices: list[dict], first: int,
                                       skip: int) -> None:
    db = Database.from_url(database_url)
    try:
        settings = test_settings(database_url)
        organization = await create_organization(db, None, name=f"Shape {uuid.uuid4().hex[:8]}",
                                                 external_id=uuid.uuid4().hex, now=T0)
        _, owner = await create_api_key(db, None, role=Role.OWNER, organization_id=organization.id, label="o",
                                        now=T0)
        for drawn in invoices:
            row = await make_invoice(
                db, organization.id, lines=drawn["lines"], currency=drawn["currency"], status=drawn["status"],
                discount=drawn["discount"], tax_rate=drawn["tax_rate"],
                tax_name="PPN" if drawn["tax_rate"] is not None else None,
                created_at=T0 + timedelta(minutes=drawn["minutes"]),
            )
            for status in drawn["payments"] if row.total > 0 else ():
                payment = await make_payment(db, row, status=status)
                refund = drawn["refund"]
                if status is PaymentStatus.SUCCEEDED and refund is not None and int(payment.amount * refund[0]) > 0:
                    await make_refund(db, payment, int(payment.amount * refund[0]), reason=refund[1])
                    break  # one refund: the invoice's refunded total stays within what was paid
        async with two_paths(db, settings, schema) as (documents, compiled, generic):
            variables = {"first": first, "after": relay.to_base64("offset", skip - 1) if skip else None}
            body = {"query": INVOICES, "variables": variables}
            by_plan, by_graphql_core = await both(documents, compiled, generic, body, owner, db)
            assert by_plan == by_graphql_core
            page = json.loads(by_plan)["data"]["invoices"]
            assert len(page["edges"]) == max(0, min(first, len(invoices) - skip))
    finally:
        await db.dispose()


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(invoices=st.lists(invoice(), max_size=5), first=st.integers(min_value=0, max_value=6),
       skip=st.integers(min_value=0, max_value=3))
def test_invoices_pages_of_any_shape_answer_the_same(database_url, graphql_schema, invoices, first, skip):
    asyncio.run(_invoices_page_on_both_paths(database_url, graphql_schema, invoices, first, skip))
