"""One object answered by one SQL statement (``compiled.sql.SqlObjectPlan``, issue 24): ``viewer.organization``
with the connections below it (credit notes, the balance's ledger) paged in the same statement. Both paths give
the same bytes on both databases, for every caller and page, and the compiled path sends one statement where
the Python plan sent one per object and connection."""

from __future__ import annotations

import contextlib
import json
import uuid
from decimal import Decimal

import httpx
import pytest
from strawberry import relay

from billing_graphql.domain.roles import Role
from billing_graphql.graphql.persisted import QUERIES_DIR
from billing_graphql.services.billing.balance import adjust_credit_balance
from billing_graphql.services.platform.api_keys import create_api_key
from billing_graphql.services.platform.organizations import create_organization
from tests.helpers import T0
from tests.perf.test_compiled_selections import _seed, answers_on_both_paths

CREDIT_NOTES = (QUERIES_DIR / "spa" / "CreditNotes.graphql").read_text()


async def _answers(db, schema, body: dict, token: str) -> tuple[bytes, bytes, int, int, bool]:
    """(compiled answer, graphql-core's answer, their statement counts with the key known, whether the plan
    answered)."""
    answers = await answers_on_both_paths(db, schema, body, token, cold_credentials=False)
    assert answers.by_plan.status_code == answers.by_graphql_core.status_code == 200
    return (answers.by_plan.content, answers.by_graphql_core.content, answers.plan_statements.count,
            answers.generic_statements.count, answers.answered)


@contextlib.asynccontextmanager
async def _both_paths(db, settings, graphql_schema):
    """An app on the compiled path (for its counters), a client of it, and a client of an app on graphql-core's."""
    from billing_graphql.app import create_app
    from tests.helpers import test_settings

    compiled_app = create_app(settings, db=db, schema=graphql_schema, freeze_gc=False)
    generic_app = create_app(test_settings(settings.database_url, compiled_documents=False), db=db,
                             schema=graphql_schema, freeze_gc=False)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=compiled_app), base_url="http://t") as compiled,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=generic_app), base_url="http://t") as generic,
    ):
        yield compiled_app, compiled, generic


async def _post_both(compiled, generic, document: str, variables: dict, token: str, made: list) -> tuple[bytes, int]:
    """The compiled answer (the same bytes as graphql-core's, checked) and how many statements it built."""
    body, headers = {"query": document, "variables": variables}, {"authorization": f"Bearer {token}"}
    before = len(made)
    by_plan = await compiled.post("/graphql", json=body, headers=headers)
    built = len(made) - before
    by_graphql_core = await generic.post("/graphql", json=body, headers=headers)
    assert by_plan.content == by_graphql_core.content
    return by_plan.content, built


PAGES = [
    {},
    {"first": 1},
    {"first": 1, "ledgerFirst": 2},  # two pages of other sizes in one statement: each its own bounds
    {"first": 0, "ledgerFirst": 1, "ledgerAfter": relay.to_base64("offset", 0)},
    {"after": relay.to_base64("offset", 0), "ledgerAfter": relay.to_base64("offset", 1)},
    {"after": relay.to_base64("offset", 30), "ledgerFirst": 0},  # past the end
]


@pytest.mark.parametrize("variables", PAGES, ids=[json.dumps(page) for page in PAGES])
async def test_the_credit_notes_page_is_one_statement(db, settings, graphql_schema, variables):
    keys, _ = await _seed(db, settings)
    by_plan, by_graphql_core, statements, generic_statements, answered = await _answers(
        db, graphql_schema, {"query": CREDIT_NOTES, "variables": variables}, keys[Role.OWNER])
    assert by_plan == by_graphql_core
    assert answered and b'"errors"' not in by_plan
    assert statements == 1 < generic_statements
    organization = json.loads(by_plan)["data"]["viewer"]["organization"]
    assert organization["creditNotes"] is not None and organization["creditBalanceTransactions"] is not None


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.SUPER_ADMIN])
async def test_every_caller_gets_what_graphql_core_gives(db, settings, graphql_schema, role):
    """A member: the ledger refused (the generic path answers, with its error) and the credit notes null; a
    super-admin has no organization of its own: null."""
    keys, _ = await _seed(db, settings)
    by_plan, by_graphql_core, _, _, answered = await _answers(db, graphql_schema, {"query": CREDIT_NOTES}, keys[role])
    assert by_plan == by_graphql_core
    assert answered == (b'"errors"' not in by_graphql_core)
    if role is Role.SUPER_ADMIN:
        assert json.loads(by_plan)["data"]["viewer"]["organization"] is None


async def test_another_organization_sees_only_its_own(db, settings, graphql_schema):
    keys, demo = await _seed(db, settings)
    other = await create_organization(db, None, name="Other", external_id=uuid.uuid4().hex, now=T0)
    _, owner = await create_api_key(db, None, role=Role.OWNER, organization_id=other.id, label="o", now=T0)
    await adjust_credit_balance(db, None, organization_id=other.id, amount=Decimal("2500"), currency="IDR",
                                reason="Welcome", idempotency_key=None, now=T0)
    by_plan, by_graphql_core, statements, _, answered = await _answers(db, graphql_schema, {"query": CREDIT_NOTES},
                                                                       owner)
    assert by_plan == by_graphql_core and answered and statements == 1
    organization = json.loads(by_plan)["data"]["viewer"]["organization"]
    assert organization["id"] == relay.to_base64("Organization", other.id) != demo
    assert organization["creditBalance"] == {"amount": "2500", "currency": "IDR", "formatted": "Rp 2,500"}
    assert organization["creditNotes"]["edges"] == []
    assert [edge["node"]["reason"] for edge in organization["creditBalanceTransactions"]["edges"]] == ["Welcome"]


async def test_selections_beside_the_connections(db, settings, graphql_schema):
    """Aliases, a connection twice under two keys with other pages, ``__typename`` at every level."""
    keys, _ = await _seed(db, settings)
    query = """query Shapes { viewer { role __typename org: organization { __typename name currency
      a: creditNotes(first: 1) { pageInfo { hasPreviousPage startCursor endCursor hasNextPage } edges { cursor
        node { __typename number lines { description amount { amount } } refunds { id } invoice { id } } } }
      b: creditNotes(first: 2, after: "b2Zmc2V0OjA=") { edges { node { number memo } } __typename }
      creditBalanceTransactions { __typename edges { cursor node { amount { formatted } source } } }
      createdAt externalId } } }"""
    by_plan, by_graphql_core, statements, _, answered = await _answers(db, graphql_schema, {"query": query},
                                                                       keys[Role.ADMIN])
    assert by_plan == by_graphql_core and answered and b'"errors"' not in by_plan
    assert statements == 1


async def test_one_object_under_several_aliases_is_read_once(db, settings, graphql_schema):
    """Found by the drawn selections: the organization under two aliases is one DataLoader read on the generic
    path; the compiled path must not read it once per alias (it keeps its Python plan there)."""
    keys, _ = await _seed(db, settings)
    query = "query Q { viewer { a: organization { __typename id } b: organization { id name } } }"
    by_plan, by_graphql_core, statements, generic_statements, _ = await _answers(
        db, graphql_schema, {"query": query}, keys[Role.OWNER])
    assert by_plan == by_graphql_core and b'"errors"' not in by_plan
    assert statements <= generic_statements


async def test_a_connection_of_pageinfo_alone_twice_is_answered_by_the_plan(db, settings, graphql_schema):
    """Found by the drawn selections: a page with no nodes selected (pageInfo alone) has no bound to rename;
    the object's plan answers it instead of leaving it to graphql-core."""
    keys, _ = await _seed(db, settings)
    query = ("query Q { viewer { organization { a: creditBalanceTransactions { pageInfo { hasNextPage } } "
             "b: creditBalanceTransactions(first: 1) { pageInfo { hasNextPage } edges { node { id } } } } } }")
    by_plan, by_graphql_core, statements, generic_statements, answered = await _answers(
        db, graphql_schema, {"query": query}, keys[Role.OWNER])
    assert answered and by_plan == by_graphql_core and b'"errors"' not in by_plan
    assert statements <= generic_statements


async def test_the_statement_is_made_once_and_each_request_binds_its_own_values(db, settings, graphql_schema,
                                                                                 monkeypatch):
    """The object's statement is made on the plan's first answer, over bind parameters, and kept: the credit
    notes' statement is built once for four requests of two organizations with other pages, and each answer is
    graphql-core's for that caller and page (no organization's rows or bounds in another's answer)."""
    from billing_graphql.services.billing import credit_notes

    keys, _ = await _seed(db, settings)
    other = await create_organization(db, None, name="Other", external_id=uuid.uuid4().hex, now=T0)
    _, other_owner = await create_api_key(db, None, role=Role.OWNER, organization_id=other.id, label="o", now=T0)
    await adjust_credit_balance(db, None, organization_id=other.id, amount=Decimal("2500"), currency="IDR",
                                reason="Welcome", idempotency_key=None, now=T0)
    made = []
    build = credit_notes.credit_notes_statement
    monkeypatch.setattr(credit_notes, "credit_notes_statement",
                        lambda organization_id: made.append(organization_id) or build(organization_id))
    # A text of its own: the registered document's plan is kept by the process (other tests answered it).
    document = f"{CREDIT_NOTES}# {uuid.uuid4()}\n"
    requests = [(keys[Role.OWNER], {}), (other_owner, {"first": 1}),
                (keys[Role.OWNER], {"first": 1, "ledgerFirst": 2, "after": relay.to_base64("offset", 0)}),
                (other_owner, {})]
    answers = []
    async with _both_paths(db, settings, graphql_schema) as (compiled_app, compiled, generic):
        answered = compiled_app.state.compiled.answered
        for token, variables in requests:
            content, built = await _post_both(compiled, generic, document, variables, token, made)
            answers.append((json.loads(content)["data"]["viewer"]["organization"], built))
    assert compiled_app.state.compiled.answered == answered + len(requests)
    assert [count for _, count in answers] == [1, 0, 0, 0]
    demo_notes = [edge["node"]["number"] for edge in answers[0][0]["creditNotes"]["edges"]]
    assert demo_notes and answers[1][0]["creditNotes"]["edges"] == answers[3][0]["creditNotes"]["edges"] == []
    assert [edge["node"]["number"] for edge in answers[2][0]["creditNotes"]["edges"]] == demo_notes[1:2]
    assert answers[1][0]["creditBalance"]["amount"] == "2500" and answers[1][0]["id"] != answers[0][0]["id"]


INVOICES = """query Page($first: Int, $after: String, $status: InvoiceStatus, $organizationId: ID) {
  invoices(first: $first, after: $after, status: $status, organizationId: $organizationId) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id invoiceNumber status currency total { amount formatted } } }
  }
}
"""


async def test_a_root_pages_statement_is_made_once_for_each_pattern_of_its_filters(db, settings, graphql_schema,
                                                                                     monkeypatch):
    """The invoices page's statement is made on the plan's first answer for each pattern of the filters left
    out (here: organization and no status, organization and a status, every organization), over bind parameters,
    and kept; each request binds its organization, status and page, and its answer is graphql-core's for that
    caller (no organization's rows or bounds in another's answer)."""
    from billing_graphql.services.billing import invoicing

    keys, _ = await _seed(db, settings)
    other = await create_organization(db, None, name="Other", external_id=uuid.uuid4().hex, now=T0)
    _, other_owner = await create_api_key(db, None, role=Role.OWNER, organization_id=other.id, label="o", now=T0)
    made = []
    build = invoicing.invoices_statement
    monkeypatch.setattr(invoicing, "invoices_statement",
                        lambda *values: made.append(values) or build(*values))
    document = f"{INVOICES}# {uuid.uuid4()}\n"  # a text of its own: plans are kept by the process
    second = relay.to_base64("offset", 1)
    requests = [(keys[Role.OWNER], {}, 1), (other_owner, {"first": 1}, 0), (keys[Role.OWNER], {"first": 2,
                "after": second}, 0), (keys[Role.OWNER], {"status": "PAID"}, 1), (other_owner, {"status": "OPEN"}, 0),
                (keys[Role.SUPER_ADMIN], {"first": 3}, 1), (keys[Role.OWNER], {"status": "VOID", "first": 1}, 0)]
    pages = []
    async with _both_paths(db, settings, graphql_schema) as (compiled_app, compiled, generic):
        answered = compiled_app.state.compiled.answered
        for token, variables, _ in requests:
            content, built = await _post_both(compiled, generic, document, variables, token, made)
            assert b'"errors"' not in content
            pages.append((json.loads(content)["data"]["invoices"], built))
    assert compiled_app.state.compiled.answered == answered + len(requests)
    assert [built for _, built in pages] == [made_once for _, _, made_once in requests]
    numbers = [edge["node"]["invoiceNumber"] for edge in pages[0][0]["edges"]]
    assert len(numbers) > 3 and pages[1][0]["edges"] == [] and pages[4][0]["edges"] == []
    assert [edge["node"]["invoiceNumber"] for edge in pages[2][0]["edges"]] == numbers[2:4]
    assert {edge["node"]["status"] for edge in pages[3][0]["edges"]} == {"PAID"}
    assert [edge["node"]["status"] for edge in pages[6][0]["edges"]] == ["VOID"]
    assert len(pages[5][0]["edges"]) == 3 and pages[5][0]["pageInfo"]["hasNextPage"]


PLANS = "query P($all: Boolean, $currency: String) { plans(includeInactive: $all, currency: $currency) { slug name } }\n"
COUPONS = """query C($active: Boolean, $first: Int) {
  coupons(isActive: $active, first: $first) { pageInfo { hasNextPage } edges { node { code isActive } } }
}
"""
SHAPES = {
    # The flag and whether a currency is given decide the form; the currency is bound ("usd" checked to "USD").
    "plans": (PLANS, "billing_graphql.graphql.catalog.types", "catalog_rows",
              [({}, 1), ({"all": True}, 1), ({"currency": "IDR"}, 1), ({"currency": "usd", "all": False}, 0),
               ({"all": True}, 0), ({"currency": "IDR", "all": True}, 1), ({}, 0)]),
    # isActive is read in Python (IS TRUE / IS FALSE / left out): each value its own form.
    "coupons": (COUPONS, "billing_graphql.services.catalog.coupons", "coupons_statement",
                [({}, 1), ({"active": True}, 1), ({"active": False, "first": 1}, 1), ({"active": True, "first": 1}, 0),
                 ({"first": 1}, 0)]),
}


@pytest.mark.parametrize("name", SHAPES)
async def test_a_root_statement_is_made_once_for_each_shape(db, settings, graphql_schema, monkeypatch, name):
    """A statement whose form depends on a flag (``Statement.shape``) is made once for each, and every answer
    is graphql-core's: a flag's statement is never answered with another flag's rows."""
    import importlib


    document, module_name, attribute, requests = SHAPES[name]
    keys, _ = await _seed(db, settings)
    module = importlib.import_module(module_name)
    made = []
    build = getattr(module, attribute)
    monkeypatch.setattr(module, attribute, lambda *values: made.append(values) or build(*values))
    document = f"{document}# {uuid.uuid4()}\n"
    built, answers = [], set()
    async with _both_paths(db, settings, graphql_schema) as (compiled_app, compiled, generic):
        answered = compiled_app.state.compiled.answered
        for variables, _ in requests:
            content, count = await _post_both(compiled, generic, document, variables, keys[Role.SUPER_ADMIN], made)
            assert b'"errors"' not in content
            built.append(count)
            answers.add(content)
    assert compiled_app.state.compiled.answered == answered + len(requests)
    assert built == [made_once for _, made_once in requests]
    assert len(answers) >= 4  # the forms give different rows: a mixed-up statement would show
