"""The differential test of issue 24: Hypothesis draws query documents over every root list and connection
with a SQL form (``graphql.sql_roots.ROOTS``), and over ``viewer`` down to its organization's connections
answered by SQL below a Python plan (``sql_roots.FIELDS``: credit notes, the balance's ledger): subsets of the fields of each type (with and without SQL forms),
aliases, a field twice under two keys, ``__typename``, nested objects, lists and connections, root arguments
given inline or as variables, callers of several roles. The compiled path (a plan made when the document is
first seen: the SQL tier where every selected field has a SQL form, else the Python plan) must answer with
the very bytes graphql-core gives (the SQL tier passes on the JSON text its statement writes), on both databases, with no more SQL statements; and where graphql-core
answers with errors, the compiled path gives the same errors (it hands such requests to graphql-core)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, get_named_type, is_leaf_type
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import select, update
from strawberry import relay

from billing_graphql.app import create_app
from billing_graphql.db.engine import Database
from billing_graphql.db.models import CouponDuration, InvoiceLine, Organization, Subscription
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.credit_notes import CreditNoteOutcome, CreditNoteReason
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.balance import adjust_credit_balance
from billing_graphql.services.platform import auth
from billing_graphql.services.billing.credit_notes import issue_credit_note
from billing_graphql.demo import DEMO_ORGANIZATION_EXTERNAL_ID, seed_demo
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus
from billing_graphql.graphql.sql_roots import FIELDS, ROOTS
from tests.factories import (
    make_addon,
    make_coupon,
    make_invoice,
    make_organization,
    make_payment_method,
    make_plan,
    make_subscription,
)
from tests.helpers import T0, count_statements, test_settings
from tests.services.test_refunds import FakeProcessor

ALIASES = ["a", "b", "x1", "other"]
DOLLAR_PLAN = uuid.UUID(int=8)  # the seeded inactive plan (``_seed``), for ``plan(id:)``
RUPIAH_PLAN = uuid.UUID(int=9)  # a seeded active IDR plan beside the demo's, for ``coupon(planId:)``


def _arguments(organization: str) -> dict[str, dict[str, st.SearchStrategy]]:
    """Root arguments worth drawing, per root (a value, or None for the argument left out)."""
    page = {"first": st.integers(min_value=0, max_value=4), "after": st.sampled_from(
        [relay.to_base64("offset", n) for n in range(3)])}
    return {
        "invoices": {**page, "status": st.sampled_from(["PAID", "OPEN", "VOID"]),
                     "organizationId": st.just(organization)},
        "plans": {"includeInactive": st.booleans(), "currency": st.sampled_from(["IDR", "USD"])},
        "addons": {"includeInactive": st.booleans(), "currency": st.sampled_from(["IDR", "USD"])},
        "coupons": {**page, "isActive": st.booleans()},
        "paymentMethods": {},
        "webhookEndpoints": {"organizationId": st.just(organization)},
        "webhookDeliveries": {**page, "status": st.sampled_from(["PENDING", "DELIVERED", "FAILED"])},
        "organizations": page,
        "apiKeys": {"organizationId": st.just(organization)},
        "metrics": {},
        "subscriptions": {**page, "status": st.sampled_from(["ACTIVE", "TRIALING", "PAST_DUE"])},
        "viewer": {},
        # A slug, an inactive plan's (super-admins only), none; an id of no plan; a malformed id; both or neither: null.
        "plan": {"slug": st.sampled_from(["growth-idr", "dollar", "nope"]), "id": st.sampled_from(
            [relay.to_base64("Plan", DOLLAR_PLAN), relay.to_base64("Plan", uuid.UUID(int=7)), "not-an-id"])},
        # The organization, one with no row (null) and a malformed id (an error on both paths).
        "organization": {"id": st.sampled_from([organization, relay.to_base64("Organization", uuid.UUID(int=7)),
                                                "not-an-id"])},
        # Its own (tenants; super-admins must name one), one with no row (null) and a malformed id (an error).
        "entitlements": {"organizationId": st.sampled_from([organization, relay.to_base64("Organization", uuid.UUID(int=7)),
                                                            "not-an-id"])},
        "usage": {"organizationId": st.sampled_from([organization, relay.to_base64("Organization", uuid.UUID(int=7)),
                                                     "not-an-id"])},
        "planLimits": {"organizationId": st.sampled_from([organization, relay.to_base64("Organization", uuid.UUID(int=7)),
                                                          "not-an-id"])},
        "subscription": {"organizationId": st.sampled_from([organization, relay.to_base64("Organization", uuid.UUID(int=7)),
                                                            "not-an-id"])},
        # The organization (twice: shown once), none, one of no row (super-admins: left out) and a malformed id;
        # the billing month in force, the one that starts in a month, no such month (an error on both paths).
        "usageSnapshots": {**page, "organizationIds": st.sampled_from(
            [[organization], [organization, organization], [], [relay.to_base64("Organization", uuid.UUID(int=7))],
             ["not-an-id"]]), "month": st.sampled_from(["2026-01", "2025-12", "2026-13"])},
        # The seeded coupons (TENOFF: FIXED in USD, for the inactive dollar plan; HALF: inactive) and the demo's,
        # typed in mixed case and padded (an upper-case literal is drawn as an enum value), an unknown code and a
        # malformed one; an active IDR plan, the inactive dollar plan (super-admins only), an id of no plan, a
        # malformed id (an error on both paths).
        # Ranges over the demo's months and across a year, in the future, one day, reversed (an error on both paths);
        # the demo's currency, one of no subscriptions, one in lower case, an unknown one (an error).
        "analytics": {"from": st.sampled_from(["2025-12-01", "2026-01-15", "2099-01-01"]),
                      "to": st.sampled_from(["2026-01-15", "2026-06-30", "2099-02-28"]),
                      "currency": st.sampled_from(["IDR", "USD", "idr", "XYZ"])},
        "coupon": {"code": st.sampled_from(["TenOff", "half", "Welcome10", " launch50k ", "nope", "no way!"]),
                   "planId": st.sampled_from([relay.to_base64("Plan", RUPIAH_PLAN), relay.to_base64("Plan", DOLLAR_PLAN),
                                              relay.to_base64("Plan", uuid.UUID(int=7)), "not-an-id"])},
    }


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.isupper():
        return value  # an enum value
    return json.dumps(value)


def _drawable(field, depth: int) -> bool:
    """A field drawn without arguments, with something to select below it within ``depth``."""
    if any(isinstance(argument.type, GraphQLNonNull) for argument in field.args.values()):
        return False  # a field with optional arguments is drawn without them (Organization.creditNotes)
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return True
    return (isinstance(named, GraphQLObjectType) and depth > 0
            and any(_drawable(below, depth - 1) for below in named.fields.values()))


@st.composite
def _selection(draw, object_type: GraphQLObjectType, depth: int) -> str:
    """A selection set over ``object_type``: a subset of its fields without arguments, some aliased, some
    twice, objects and lists below to ``depth``."""
    candidates = []
    for name, field in object_type.fields.items():
        if _drawable(field, depth):
            candidates.append((name, get_named_type(field.type)))
    chosen = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=7, unique_by=lambda item: item[0]))
    parts = []
    for index, (name, named) in enumerate(chosen):
        keys = [None]
        if draw(st.integers(0, 4)) == 0:
            keys = [f"{draw(st.sampled_from(ALIASES))}{index}"]
        if draw(st.integers(0, 6)) == 0:
            keys.append(f"again{index}")  # the same field under a second key
        for key in keys:
            prefix = f"{key}: " if key else ""
            below = "" if is_leaf_type(named) else " { " + draw(_selection(named, depth - 1)) + " }"
            parts.append(f"{prefix}{name}{below}")
    if draw(st.integers(0, 5)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), "__typename")
    return " ".join(parts)


@st.composite
def document(draw, schema, organization: str) -> tuple[str, dict, str]:
    """(query text, variables, the first root's name): one root field, now and then two (one SQL plan each,
    or one answered by SQL beside one on the Python plan)."""
    roots = draw(st.lists(st.sampled_from(sorted(ROOTS) + ["viewer"]), min_size=1, max_size=2, unique=True))
    declared, variables, calls = [], {}, []
    for number, root in enumerate(roots):
        field = schema.query_type.fields[root]
        given = []
        for name, strategy in _arguments(organization)[root].items():
            if not isinstance(field.args[name].type, GraphQLNonNull) and not draw(st.booleans()):
                continue  # an argument it needs is always given
            value = draw(strategy)
            if draw(st.booleans()):
                variable = f"{name}{number}"
                declared.append(f"${variable}: {field.args[name].type}")
                given.append(f"{name}: ${variable}")
                variables[variable] = value
            else:
                given.append(f"{name}: {_literal(value)}")
        # viewer: its organization's nested connections answered by SQL (sql_roots.FIELDS), two levels deeper
        selection = draw(_selection(get_named_type(field.type), depth=5 if root == "viewer" else 3))
        alias = f"r{number}: " if number and draw(st.booleans()) else ""
        calls.append(f"{alias}{root}({', '.join(given)}) {{ {selection} }}" if given
                     else f"{alias}{root} {{ {selection} }}")
    head = f"query Drawn({', '.join(declared)})" if declared else "query Drawn"
    return f"{head} {{ {' '.join(calls)} }}", variables, roots[0]


async def _seed(db: Database, settings) -> tuple[dict[Role, str], str]:
    """The demo data, and more of every kind: invoices in several currencies with lines, payments and
    refunds, inactive plans and add-ons, FIXED and PERCENTAGE coupons with plans, payment methods, a webhook
    endpoint with a delivery."""
    from tests.api.test_invoices_api import seed_invoices, seed_refunds
    from tests.api.test_queries_dir import _webhook_substitutions

    keys = await seed_demo(db, T0, settings)
    async with db.read() as session:
        organization_id = await session.scalar(
            select(Organization.id).where(Organization.external_id == DEMO_ORGANIZATION_EXTERNAL_ID))
    invoices = await seed_invoices(db, organization_id, 3, lines=2)
    await seed_refunds(db, invoices[:1])
    for minutes, currency, status in ((7, "USD", InvoiceStatus.OPEN), (8, "KWD", InvoiceStatus.VOID),
                                      (9, "JPY", InvoiceStatus.DRAFT)):
        await make_invoice(db, organization_id, currency=currency, status=status,
                           created_at=T0 + timedelta(minutes=minutes))
    usd = await make_plan(db, id=DOLLAR_PLAN, name="Dollar", slug="dollar", currency="USD", monthly=1999, active=False)
    await make_plan(db, id=RUPIAH_PLAN, name="Rupiah", slug="rupiah", currency="IDR", sort_order=20)
    await make_addon(db, name="Old extra", currency="USD", monthly=505, active=False)
    ten_off = await make_coupon(db, code="TENOFF", percent_off=None, amount_off=1050, currency="USD", plans=[usd],
                                duration=CouponDuration.REPEATING, months=3, max_uses=5)
    half = await make_coupon(db, code="HALF", percent_off=50, active=False)
    # Staff lists' subscriptions with a coupon each (a FIXED one with periods left, a PERCENTAGE one forever) and
    # pending changes (a plan and a period; a period alone), beside the demo's plain one.
    for name, coupon, remaining, pending_plan, pending_period in (
            ("Couponed", ten_off, 2, usd.id, BillingPeriod.ANNUAL), ("Forever", half, None, None, BillingPeriod.ANNUAL)):
        subscription = await make_subscription(db, (await make_organization(db, name)).id)  # on a plan of its own
        async with db.write() as session:
            await session.execute(update(Subscription).where(Subscription.id == subscription.id).values(
                coupon_id=coupon.id, coupon_periods_remaining=remaining, pending_plan_id=pending_plan,
                pending_billing_period=pending_period))
    await make_payment_method(db, organization_id, token="pm_card_mastercard", is_default=False, label="Spare")
    await _webhook_substitutions(db)
    # Credit notes (one as account credit, one per line of another invoice with a memo to escape) and the
    # balance's ledger (those credits and a staff adjustment, negative).
    gateways = GatewayRegistry(settings, overrides={"sandbox": FakeProcessor()})
    await issue_credit_note(db, None, invoice_id=invoices[1], reason=CreditNoteReason.OTHER,
                            outcome=CreditNoteOutcome.CREDIT_BALANCE, amount=Decimal("1500"), idempotency_key=None,
                            gateways=gateways, now=T0 + timedelta(days=1))
    async with db.read() as session:
        line_id = await session.scalar(select(InvoiceLine.id).where(InvoiceLine.invoice_id == invoices[2]).limit(1))
    await issue_credit_note(db, None, invoice_id=invoices[2], reason=CreditNoteReason.OTHER,
                            outcome=CreditNoteOutcome.CREDIT_BALANCE, lines=[(line_id, None)],
                            memo='Goodwill "quoted", \\ and ünïcödé', idempotency_key=None, gateways=gateways,
                            now=T0 + timedelta(days=2))
    await adjust_credit_balance(db, None, organization_id=organization_id, amount=Decimal("-700"), currency="IDR",
                                reason='Correction "typo"', idempotency_key=None, now=T0 + timedelta(days=3))
    return keys, relay.to_base64("Organization", organization_id)


@pytest.fixture
async def seeded(db, settings):
    return await _seed(db, settings)


@dataclass
class Answers:
    by_plan: httpx.Response
    by_graphql_core: httpx.Response
    plan_statements: Any  # tests.helpers' statement counters
    generic_statements: Any
    answered: bool  # the compiled app answered from its plan


async def answers_on_both_paths(db: Database, schema, body: dict, token: str, cold_credentials: bool = True,
                                **overrides: Any) -> Answers:
    """The request's answers by an app with the compiled plans and by one without, on ``db``, and the SQL
    statements each sent (``cold_credentials``: the key's lookup counted, as in ``count_statements``; else the key
    is known to both counts: read before them and trusted throughout, however slowly the machine runs them, not
    for ``VERIFIED_SECONDS`` only; ``overrides``: settings of both apps, e.g. ``test_clock``)."""
    if cold_credentials:
        return await _answers(db, schema, body, token, True, overrides)
    with patch.object(auth, "VERIFIED_SECONDS", 3600):
        return await _answers(db, schema, body, token, False, overrides)


async def _answers(db: Database, schema, body: dict, token: str, cold_credentials: bool, overrides: dict) -> Answers:
    settings = test_settings(db.engine.url.render_as_string(hide_password=False), **overrides)
    compiled_app = create_app(settings, db=db, schema=schema, freeze_gc=False)
    generic_app = create_app(test_settings(settings.database_url, compiled_documents=False, **overrides), db=db,
                             schema=schema, freeze_gc=False)
    documents = compiled_app.state.compiled
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=compiled_app), base_url="http://t") as compiled,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=generic_app), base_url="http://t") as generic,
    ):
        auth.forget_verified(db)  # the key read anew below, for as long as VERIFIED_SECONDS says now
        await generic.post("/graphql", json={"query": "{ clock { now } }"}, headers=headers)  # the key's first use
        answered = documents.answered
        with count_statements(db, cold_credentials=cold_credentials) as by_plan_statements:
            by_plan = await compiled.post("/graphql", json=body, headers=headers)
        with count_statements(db, cold_credentials=cold_credentials) as generic_statements:
            by_graphql_core = await generic.post("/graphql", json=body, headers=headers)
    return Answers(by_plan, by_graphql_core, by_plan_statements, generic_statements,
                   documents.answered == answered + 1)


async def _both_paths(database_url: str, schema, body: dict, token: str) -> None:
    db = Database.from_url(database_url)
    try:
        answers = await answers_on_both_paths(db, schema, body, token)
        by_plan, by_graphql_core = answers.by_plan, answers.by_graphql_core
        by_plan_statements, generic_statements = answers.plan_statements, answers.generic_statements
        assert by_plan.status_code == by_graphql_core.status_code
        assert by_plan.content == by_graphql_core.content, (body, by_plan.content, by_graphql_core.content)
        event("graphql-core erred" if b'"errors"' in by_graphql_core.content else
              "answered by the SQL tier" if by_plan_statements.count <= 2 else "answered by the plan")
        if b'"errors"' not in by_graphql_core.content:
            assert answers.answered, ("graphql-core answered, the plan did not", body)
            assert by_plan_statements.count <= generic_statements.count, (
                body, by_plan_statements.statements, generic_statements.statements)
    finally:
        await db.dispose()


# Who reads each root as its users do; any role now and then (refusals: the same errors on both paths).
NATURAL_ROLE = {"invoices": Role.OWNER, "viewer": Role.OWNER, "paymentMethods": Role.ADMIN, "webhookEndpoints": Role.OWNER,
                "webhookDeliveries": Role.OWNER, "apiKeys": Role.OWNER}


@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large])
@given(data=st.data())
def test_drawn_selections_answer_the_same_on_both_paths(database_url, graphql_schema, seeded, data):
    keys, organization = seeded
    query, variables, root = data.draw(document(graphql_schema._schema, organization), label="document")  # noqa: SLF001
    natural = NATURAL_ROLE.get(root, Role.SUPER_ADMIN)
    role = data.draw(st.one_of(st.just(natural), st.just(natural), st.just(Role.SUPER_ADMIN),
                               st.sampled_from([Role.OWNER, Role.ADMIN, Role.MEMBER])), label="role")
    asyncio.run(_both_paths(database_url, graphql_schema, {"query": query, "variables": variables}, keys[role]))


def test_the_drawn_documents_reach_the_sql_tier(graphql_schema):
    """The strategy is not vacuous: documents it draws are answered by the SQL tier for every root."""
    from billing_graphql.graphql.schema import compiled_documents

    documents = compiled_documents(graphql_schema, test_settings("sqlite+aiosqlite://"))
    reached: set[str] = set()

    # 1,000 documents: InvoiceLine.tierBreakdown (no SQL form) keeps a drawn invoices document with lines on
    # the Python plan about half the time, and 300 drew too few invoices documents without it to be sure.
    @hypothesis_settings(max_examples=1000, deadline=None, database=None)
    @given(drawn=document(graphql_schema._schema, relay.to_base64("Organization", "x")))  # noqa: SLF001
    def draw(drawn):
        plan = documents.plan_for({"query": drawn[0], "variables": drawn[1]})
        if plan is not None and plan.sql is not None:
            reached.update(sql.field_plan.name for sql in plan.sql.by_key.values())
        if plan is not None:
            reached.update(_nested_sql(plan.root))

    draw()
    assert reached == set(ROOTS) | set(FIELDS), (set(ROOTS) | set(FIELDS)) - reached


def _nested_sql(plan) -> set[tuple[str, str]]:
    """The (type, field) connections below the root that a plan answers by SQL."""
    found = set()
    for field_plan in getattr(plan, "fields", ()):
        if field_plan.sql is not None and field_plan.parent_type is not None:
            found.add((field_plan.parent_type.name, field_plan.name))
        complete = field_plan.complete
        while hasattr(complete, "item"):
            complete = complete.item
        found |= _nested_sql(complete)
    return found
