"""Every query document is planned when first seen (issue 24): an ad-hoc document answers from its plan,
byte for byte as graphql-core; plans are kept in a bounded LRU keyed by the text; a document over the token
limit or failing validation is never cached; what the planner cannot handle falls back to graphql-core and
is counted by reason in ``billing_graphql_plan_fallbacks_total`` (read from ``GET /metrics``)."""

from __future__ import annotations

from dataclasses import replace

import httpx
from prometheus_client.parser import text_string_to_metric_families

from billing_graphql.app import create_app
from billing_graphql.graphql.compiled import CompiledDocuments, Unplanned
from billing_graphql.graphql.persisted import QUERIES_DIR, TrustedDocuments
from billing_graphql.graphql.schema import validation_rules
from billing_graphql.settings import Settings
from tests.perf.test_compiled_path import INVOICES, both, two_paths

# The registered invoices page with one field added and one alias: no longer a registered document.
AD_HOC_INVOICES = INVOICES.replace("invoiceNumber", "invoiceNumber number: invoiceNumber paidAt", 1)


def test_the_ad_hoc_document_differs_from_the_registered_one():
    assert AD_HOC_INVOICES != INVOICES and "paidAt" in AD_HOC_INVOICES and "number: invoiceNumber" in AD_HOC_INVOICES


def _documents(graphql_schema, cache_size: int, **overrides) -> CompiledDocuments:
    settings = Settings(**overrides)
    return CompiledDocuments.build(graphql_schema, TrustedDocuments.load(require=settings.trusted_documents),
                                   validation_rules(settings), settings.max_tokens, cache_size=cache_size)


def test_plans_are_kept_in_a_bounded_lru_keyed_by_text(graphql_schema):
    documents = _documents(graphql_schema, cache_size=3)
    bodies = [f"query Q{n} {{ viewer {{ role }} }}" for n in range(5)]
    for body in bodies[:3]:
        assert documents.plan_for({"query": body}) is not None
    assert documents.plan_for({"query": bodies[0]}) is not None  # used again: the most recent now
    for body in bodies[3:]:
        assert documents.plan_for({"query": body}) is not None
    assert len(documents.cache) == 3
    assert list(documents.cache.entries) == [bodies[0], bodies[3], bodies[4]]
    hits = documents.cache.hits
    plan = documents.plan_for({"query": bodies[4]})
    assert documents.cache.hits == hits + 1 and plan is documents.cache.entries[bodies[4]]
    # registered documents are planned at start-up and never enter the LRU
    registered = (QUERIES_DIR / "spa" / "Viewer.graphql").read_text()
    assert documents.plan_for({"query": registered}) is documents.by_body[registered]
    assert registered not in documents.cache.entries


def test_a_cache_size_of_zero_plans_only_the_registered_documents(graphql_schema):
    documents = _documents(graphql_schema, cache_size=0)
    assert documents.by_body
    documents.plan_for({"query": "query Q { viewer { role } }"})
    assert len(documents.cache) == 0


def test_invalid_and_oversized_documents_are_never_cached(graphql_schema):
    documents = _documents(graphql_schema, cache_size=10, max_tokens=60)
    oversized = "query Big { viewer { " + " ".join(["role"] * 80) + " } }"
    for body in ("query Broken { viewer { ", "query Unknown { viewer { nope } }",
                 "query Unused($first: Int) { viewer { role } }", oversized):
        assert documents.plan_for({"query": body}) is None
    assert len(documents.cache) == 0


def test_what_the_planner_cannot_handle_is_cached_with_its_reason(graphql_schema):
    documents = _documents(graphql_schema, cache_size=10)
    cases = {
        "query D { viewer { role @include(if: true) } }": "directives",
        "{ __schema { queryType { name } } }": "introspection",
        'query N { node(id: "x") { id } }': "abstract_type",
        "query A { viewer { role } } query B { viewer { role } }": "several_operations",
    }
    for body, reason in cases.items():
        assert documents.plan_for({"query": body}) is None
        entry = documents.cache.entries[body]
        assert isinstance(entry, Unplanned) and entry.reason == reason, (body, entry)


def _fallbacks(text: str) -> dict[str, float]:
    return {sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "billing_graphql_plan_fallbacks"
            for sample in family.samples if sample.name == "billing_graphql_plan_fallbacks_total"}


async def test_ad_hoc_queries_answer_from_their_plans_and_fallbacks_are_counted(db, settings, graphql_schema, keys):
    from tests.api.test_invoices_api import seed_invoices

    await seed_invoices(db, keys.organization_id, 4, lines=2)
    async with two_paths(db, settings, graphql_schema) as (documents, compiled, generic):
        # an ad-hoc invoices query: planned on first sight, its SQL plan answers, byte for byte
        for variables in ({}, {"first": 2}):
            by_plan, by_graphql_core = await both(documents, compiled, generic,
                                                  {"query": AD_HOC_INVOICES, "variables": variables}, keys.owner, db)
            assert by_plan == by_graphql_core and b'"errors"' not in by_plan
            assert b'"number":' in by_plan and b'"paidAt":' in by_plan
        assert documents.cache.get(AD_HOC_INVOICES).sql is not None
        # documents the planner cannot handle: answered by graphql-core (the same bytes), counted by reason
        headers = {"authorization": f"Bearer {keys.owner}"}
        before = _fallbacks((await compiled.get("/metrics")).text)
        cases = [("query D { viewer { role @include(if: true) } }", "directives"),
                 ("query D { viewer { role @include(if: true) } }", "directives"),
                 ("{ __schema { queryType { name } } }", "introspection"),
                 ('query N { node(id: "SW52b2ljZTox") { id } }', "abstract_type")]
        for body, _ in cases:
            answered = documents.answered
            answer = await compiled.post("/graphql", json={"query": body}, headers=headers)
            assert answer.content == (await generic.post("/graphql", json={"query": body}, headers=headers)).content
            assert documents.answered == answered
        # a document that does not validate is the generic path's error, and counts as no fallback
        broken = await compiled.post("/graphql", json={"query": "query X { viewer { nope } }"}, headers=headers)
        assert broken.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        after = _fallbacks((await compiled.get("/metrics")).text)
    assert after["directives"] - before.get("directives", 0) == 2
    assert after["introspection"] - before.get("introspection", 0) == 1
    assert after["abstract_type"] - before.get("abstract_type", 0) == 1
    assert sum(after.values()) - sum(before.values()) == 4


async def test_free_text_stays_refused_where_registered_documents_are_required(db, settings, keys):
    app = create_app(replace(settings, trusted_documents="all"), db=db, freeze_gc=False)  # its own schema
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        answer = await client.post("/graphql", json={"query": AD_HOC_INVOICES},
                                   headers={"authorization": f"Bearer {keys.owner}"})
    assert answer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert AD_HOC_INVOICES not in app.state.compiled.cache.entries
