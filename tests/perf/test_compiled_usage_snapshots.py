"""``usageSnapshots`` on the SQL tier (``graphql.usage.schema.usage_snapshots_query``: a computed page, its rows bound
as ``graphql.usage.types.snapshot_rows``): the same bytes as graphql-core over ``services.usage.partners``'
``snapshots_of`` and ``snapshot_page`` on both databases, and no more statements.

A partner is granted Acme (a live subscription anchored mid-month: its billing month in force is 20 April - 20 May,
charged metrics with amounts), Globex (no subscription: calendar months, no amounts) and Initech (on a trial of a
USD plan anchored on 3 May); Umbrella is not granted, and has counters of its own, as every organization has counters
of other months. Both forms: ``organizationIds`` (in the order asked, each once, FORBIDDEN for the whole request for
one not granted, a malformed id refused) and the page of the granted organizations by name (``first``/``after``);
with and without ``month``; a super-admin's; ``amount`` selected and not; GAUGE and COUNTER metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update
from strawberry import relay

from billing_graphql.db.models import PartnerGrant, Plan, Subscription, TestClock
from billing_graphql.domain.charges import Charge, ChargeModel
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.graphql.common import cursor_at
from tests.factories import make_organization, make_plan, make_subscription
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths
from tests.perf.test_compiled_usage_amounts import PAID, _charges
from tests.perf.test_compiled_usage_pages import ANCHOR, NOW, _counter

SNAPSHOTS = """query S($ids: [ID!], $month: String, $first: Int, $after: String) {
  usageSnapshots(organizationIds: $ids, month: $month, first: $first, after: $after) {
    __typename
    edges { cursor __typename node { __typename organization { id name } plan { slug name } month periodStart periodEnd
      metrics { metric { code kind } used limit overage amount { amount currency formatted } a2: amount { formatted } }
    } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
AMOUNTS = "amount { amount currency formatted } a2: amount { formatted }"
WITHOUT_AMOUNTS = SNAPSHOTS.replace(AMOUNTS, "")
PAGE_INFO = """query P($first: Int, $after: String) { usageSnapshots(first: $first, after: $after) {
  pageInfo { endCursor hasNextPage hasPreviousPage } } }"""
TRIAL_START = datetime(2026, 5, 3, 8, 30, tzinfo=UTC)


def gid(organization_id: uuid.UUID) -> str:
    return relay.to_base64("Organization", organization_id)


@pytest.fixture
async def partner(db):
    """The organizations, the grants (Acme, Globex, Initech; not Umbrella), the test clock at NOW."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    metered = await make_plan(db, slug="metered", limits={"messages": 1000, "agents": 3, "channels": 8,
                                                          "api_calls": None})
    await _charges(db, metered.id, 1, PAID)
    await make_subscription(db, keys.organization_id, plan=metered, start=ANCHOR)
    initech = await make_organization(db, "Initech")
    umbrella = await make_organization(db, "Umbrella")
    dollars = await make_plan(db, slug="dollars", name="Dollars", currency="USD", limits={"messages": 10})
    await _charges(db, dollars.id, 1, {"messages": Charge(ChargeModel.STANDARD, 5, Decimal(2))})
    await make_subscription(db, initech.id, plan=dollars, start=TRIAL_START, status=SubscriptionStatus.TRIALING)
    for organization_id, code, key, value in (
            (keys.organization_id, "messages", "2026-04", 1151), (keys.organization_id, "messages", "2026-05", 7),
            (keys.organization_id, "messages", "2026-03", 3), (keys.organization_id, "agents", "current", 6),
            (keys.organization_id, "agents", "2026-04", 99), (keys.organization_id, "api_calls", "2026-04", 2500),
            (keys.other_organization_id, "messages", "2026-05", 4), (keys.other_organization_id, "messages", "2026-04", 40),
            (keys.other_organization_id, "contacts", "current", 12),
            (initech.id, "messages", "2026-05", 12), (initech.id, "messages", "2026-04", 500),
            (umbrella.id, "messages", "2026-05", 77), (umbrella.id, "agents", "current", 5)):
        await _counter(db, organization_id, code, key, value)
    key_id = await _partner_key_id(db)
    async with db.write() as session:
        session.add_all(PartnerGrant(id=uuid.uuid4(), api_key_id=key_id, organization_id=organization_id,
                                     created_at=NOW)
                        for organization_id in (keys.organization_id, keys.other_organization_id, initech.id))
    return keys, initech.id, umbrella.id


async def _partner_key_id(db) -> uuid.UUID:
    from tests.api.test_partner_access import partner_key_id

    return await partner_key_id(db)


async def _same(db, graphql_schema, token: str, variables: dict, sql_tier: bool = True,
                query: str = SNAPSHOTS) -> bytes:
    """The answer, the same bytes on both paths; where it is no error, the SQL tier's (``sql_tier``) with no more
    statements."""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": variables}, token,
                                          test_clock=True)
    assert answers.by_plan.status_code == answers.by_graphql_core.status_code
    assert answers.by_plan.content == answers.by_graphql_core.content
    if b'"errors"' not in answers.by_graphql_core.content:
        assert answers.answered == sql_tier, answers.by_plan.content
        assert answers.plan_statements.count <= answers.generic_statements.count, answers.plan_statements.statements
        if sql_tier and b'"node"' in answers.by_plan.content:  # the computed page's statement wrote it
            assert any("bgq_values" in statement for statement in answers.plan_statements.statements)
    return answers.by_plan.content


async def test_organization_ids_answer_the_same_on_both_paths(db, graphql_schema, partner):
    keys, initech, _ = partner
    acme, globex = keys.organization_id, keys.other_organization_id
    asked = [gid(initech), gid(acme), gid(initech), gid(globex)]  # Initech twice: shown once, where first asked
    answer = await _same(db, graphql_schema, keys.partner, {"ids": asked})
    assert answer.startswith(b'{"data":{"usageSnapshots":{"__typename":"UsageSnapshotConnection","edges":[{"cursor":"'
                             + cursor_at(0).encode() + b'","__typename":"UsageSnapshotEdge","node":{"__typename":'
                             b'"UsageSnapshot","organization":{"id":"' + gid(initech).encode() + b'","name":"Initech"},'
                             b'"plan":{"slug":"dollars","name":"Dollars"},"month":"2026-05",'
                             b'"periodStart":"2026-05-03T08:30:00Z","periodEnd":"2026-06-03T08:30:00Z"')
    # Initech's trial: May's 12 messages, 7 above the 5 included at 2 cents (its live subscription's plan, in USD).
    assert (b'{"metric":{"code":"messages","kind":"COUNTER"},"used":"12","limit":"10","overage":"2",'
            b'"amount":{"amount":"0.14","currency":"USD","formatted":"$0.14"},"a2":{"formatted":"$0.14"}}') in answer
    # Acme's billing month in force (20 April - 20 May): April's counters, the agents GAUGE's current value, amounts.
    assert (b'"organization":{"id":"' + gid(acme).encode() + b'","name":"Acme"},"plan":{"slug":"metered","name":'
            ) in answer
    assert (b'"month":"2026-04","periodStart":"2026-04-20T15:00:00Z","periodEnd":"2026-05-20T15:00:00Z"') in answer
    assert (b'{"metric":{"code":"agents","kind":"GAUGE"},"used":"6","limit":"3","overage":"3",'
            b'"amount":{"amount":"4351","currency":"IDR","formatted":"Rp 4,351"}') in answer
    assert (b'{"metric":{"code":"messages","kind":"COUNTER"},"used":"1151","limit":"1000","overage":"151",'
            b'"amount":{"amount":"526"') in answer
    assert b'{"metric":{"code":"channels","kind":"GAUGE"},"used":"0","limit":"8","overage":"0","amount":null' in answer
    # Globex: no subscription, so no plan, the calendar month, no limits and no amounts.
    assert (b'"name":"Globex"},"plan":null,"month":"2026-05","periodStart":"2026-05-01T00:00:00Z",'
            b'"periodEnd":"2026-06-01T00:00:00Z","metrics":[{"metric":{"code":"contacts","kind":"GAUGE"},"used":"12",'
            b'"limit":null,"overage":"0","amount":null,"a2":null},{"metric":{"code":"messages","kind":"COUNTER"},'
            b'"used":"4","limit":null,"overage":"0","amount":null,"a2":null}]}}]') in answer
    assert answer.endswith(b'"pageInfo":{"hasNextPage":false,"hasPreviousPage":false,"startCursor":"'
                           + cursor_at(0).encode() + b'","endCursor":"' + cursor_at(2).encode() + b'"}}}}')
    assert answer.count(b'"name":"Initech"') == 1

    answers = await answers_on_both_paths(db, graphql_schema, {"query": SNAPSHOTS, "variables": {"ids": asked}},
                                          keys.partner, test_clock=True)
    # The clock and the key; the grants, the organizations, the amounts' read and the statement; against the grants, the
    # organizations, the metrics, the limits, the counters and the versions' charges.
    assert answers.answered and (answers.plan_statements.count, answers.generic_statements.count) == (6, 8)
    # Without an amount selected: no amounts' read.
    answers = await answers_on_both_paths(db, graphql_schema, {"query": WITHOUT_AMOUNTS, "variables": {"ids": asked}},
                                          keys.partner, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content and answers.answered
    assert (answers.plan_statements.count, answers.generic_statements.count) == (5, 8)

    # With month: the billing period that starts in April (Acme's: 20 April; Globex's: April's calendar month;
    # Initech's: 3 April, before its trial began).
    april = await _same(db, graphql_schema, keys.partner, {"ids": asked, "month": "2026-04"})
    assert b'"month":"2026-04","periodStart":"2026-04-03T08:30:00Z","periodEnd":"2026-05-03T08:30:00Z"' in april
    assert b'"code":"messages","kind":"COUNTER"},"used":"500"' in april
    assert b'"month":"2026-04","periodStart":"2026-04-01T00:00:00Z","periodEnd":"2026-05-01T00:00:00Z"' in april
    assert b'"code":"messages","kind":"COUNTER"},"used":"40"' in april
    march = await _same(db, graphql_schema, keys.partner, {"ids": [gid(acme)], "month": "2026-03"},
                        query=WITHOUT_AMOUNTS)
    assert b'"periodStart":"2026-03-20T15:00:00Z"' in march and b'"COUNTER"},"used":"3","limit":"1000"' in march
    # No organization asked for: an empty page (no statement but the grants' check).
    assert b'"edges":[],"pageInfo":{"hasNextPage":false,"hasPreviousPage":false,"startCursor":null' in await _same(
        db, graphql_schema, keys.partner, {"ids": []})


async def test_refusals_are_the_generic_paths(db, graphql_schema, partner):
    keys, initech, umbrella = partner
    acme = gid(keys.organization_id)
    for token, variables in (
            (keys.partner, {"ids": [acme, gid(umbrella)]}),  # not granted: FORBIDDEN for the whole request
            (keys.partner, {"ids": [acme, relay.to_base64("Plan", initech)]}),  # another type's id: none granted
            (keys.partner, {"ids": [acme, gid(uuid.UUID(int=7))]}),  # no such organization
            (keys.partner, {"ids": [acme, "not-an-id"]}),  # malformed
            (keys.partner, {"ids": [acme], "month": "2026-13"}),  # no such month
            (keys.partner, {"first": 2, "after": "not-a-cursor"}),
            (keys.partner, {"first": 101}),
            (keys.owner, {"ids": [acme]}),  # tenants read their usage, not snapshots
    ):
        answer = await _same(db, graphql_schema, token, variables)
        assert b'"errors"' in answer, variables
    forbidden = await _same(db, graphql_schema, keys.partner, {"ids": [acme, gid(umbrella)]})
    assert b'"code":"FORBIDDEN"' in forbidden and b'"usageSnapshots":null' in forbidden


async def test_pages_of_the_granted_organizations_answer_the_same_on_both_paths(db, graphql_schema, partner):
    keys, initech, umbrella = partner
    first = await _same(db, graphql_schema, keys.partner, {"first": 2})
    assert b'"name":"Acme"' in first and b'"name":"Globex"' in first and b'"name":"Initech"' not in first
    assert first.endswith(b'"pageInfo":{"hasNextPage":true,"hasPreviousPage":false,"startCursor":"'
                          + cursor_at(0).encode() + b'","endCursor":"' + cursor_at(1).encode() + b'"}}}}')
    second = await _same(db, graphql_schema, keys.partner, {"first": 2, "after": cursor_at(1), "month": "2026-04"})
    assert b'"edges":[{"cursor":"' + cursor_at(2).encode() + b'"' in second and b'"name":"Initech"' in second
    assert b'"name":"Umbrella"' not in second  # not granted
    assert second.endswith(b'"pageInfo":{"hasNextPage":false,"hasPreviousPage":true,"startCursor":"'
                           + cursor_at(2).encode() + b'","endCursor":"' + cursor_at(2).encode() + b'"}}}}')
    # Past the last: no rows, no statement after the page's read; the first ten by default.
    past = await _same(db, graphql_schema, keys.partner, {"after": cursor_at(5)})
    assert b'"edges":[],"pageInfo":{"hasNextPage":false,"hasPreviousPage":true,"startCursor":null' in past
    everything = await _same(db, graphql_schema, keys.partner, {}, query=WITHOUT_AMOUNTS)
    assert everything.count(b'"cursor"') == 3
    # None asked for: no rows, and whether there are more.
    for variables in ({"first": 0}, {"first": 0, "after": cursor_at(2)}, {"first": 1, "after": cursor_at(0)}):
        await _same(db, graphql_schema, keys.partner, variables)
        await _same(db, graphql_schema, keys.partner, variables, query=PAGE_INFO)
    # A super-admin's pages hold every organization (Umbrella's gauge and May counter too).
    await _same(db, graphql_schema, keys.super_admin, {"first": 3})
    last = await _same(db, graphql_schema, keys.super_admin, {"first": 3, "after": cursor_at(2)})
    assert b'"name":"Umbrella"},"plan":null,"month":"2026-05"' in last
    assert b'"code":"agents","kind":"GAUGE"},"used":"5"' in last and b'"used":"77"' in last
    # ... and by organizationIds any organization, one of no row left out.
    admin = await _same(db, graphql_schema, keys.super_admin, {"ids": [
        gid(umbrella), gid(uuid.UUID(int=7)), relay.to_base64("Plan", initech), gid(keys.organization_id)]})
    assert admin.count(b'"cursor"') == 2


async def test_a_plan_without_charges_and_one_changed(db, graphql_schema, partner):
    keys, initech, _ = partner
    flat = await make_plan(db, slug="flat", limits={"messages": 5})
    async with db.write() as session:  # Initech's trial now on a plan of no charges; Acme pays version 2 (none)
        await session.execute(update(Subscription).where(Subscription.organization_id == initech)
                              .values(plan_id=flat.id))
        await session.execute(update(Subscription).where(Subscription.organization_id == keys.organization_id)
                              .values(plan_version=2))
        await session.execute(update(Plan).where(Plan.slug == "metered").values(version=2))
    answer = await _same(db, graphql_schema, keys.partner, {"ids": [gid(initech), gid(keys.organization_id)]})
    assert b'"plan":{"slug":"flat"' in answer and b'"amount":{' not in answer


async def test_the_registered_document_runs_on_the_sql_tier(db, graphql_schema, partner):
    from pathlib import Path

    keys, initech, _ = partner
    document = (Path(__file__).parents[2] / "queries" / "partner" / "UsageSnapshots.graphql").read_text()
    await _same(db, graphql_schema, keys.partner, {"organizationIds": [gid(keys.organization_id), gid(initech)]},
                query=document)


def test_a_page_of_snapshots_is_one_statement_form_per_number_of_rows():
    """Every value of a page's rows is bound, None as NULL: pages of as many organizations share the statement the
    SQL tier compiled (with or without a plan, with or without amounts); another number of rows is another form."""
    from billing_graphql.domain.periods import Period
    from billing_graphql.graphql.usage.types import snapshot_rows
    from billing_graphql.services.usage.partners import SnapshotBasis

    month = Period(ANCHOR, NOW)
    planned = SnapshotBasis(uuid.uuid4(), uuid.uuid4(), month, {uuid.uuid4(): 5})
    bare = SnapshotBasis(uuid.uuid4(), None, month, None)
    assert snapshot_rows([planned, bare]).pattern() == snapshot_rows([bare, bare]).pattern()
    assert snapshot_rows([planned]).pattern() != snapshot_rows([planned, planned]).pattern()
    assert None in snapshot_rows([bare]).values  # bound as NULL, not left out
