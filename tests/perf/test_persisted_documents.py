"""Trusted documents: queries/manifest.json (Apollo's format) in step with queries/, documentId and
Apollo's persistedQuery extension, PERSISTED_QUERY_NOT_FOUND, and the setting that requires them."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import httpx

from billing_graphql.graphql.persisted import QUERIES_DIR, build_manifest, document_id, manifest_text
from billing_graphql.settings import Settings, SettingsError
from tests.helpers import GraphQLClient

VIEWER = (QUERIES_DIR / "spa" / "Viewer.graphql").read_text()


@asynccontextmanager
async def make_client(db, settings):
    from billing_graphql.app import create_app

    transport = httpx.ASGITransport(app=create_app(settings, db=db, freeze_gc=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield GraphQLClient(client, db)


def test_manifest_is_in_step_with_the_query_files():
    committed = (QUERIES_DIR / "manifest.json").read_text()
    assert committed == manifest_text(build_manifest()), (
        "queries/manifest.json drifted: run `billing-graphql export-manifest > queries/manifest.json`")
    manifest = json.loads(committed)
    assert manifest["format"] == "apollo-persisted-query-manifest" and manifest["version"] == 1
    names = {operation["name"] for operation in manifest["operations"]}
    assert {"Invoices", "Viewer", "SubscriptionPage"} <= names
    for operation in manifest["operations"]:
        assert operation["id"] == document_id(operation["body"])
        assert operation["type"] in {"query", "mutation"}


async def test_document_id_runs_the_registered_text(api, keys):
    by_text = await api.post(VIEWER, token=keys.owner)
    response = await api.client.post("/graphql", json={"documentId": document_id(VIEWER)},
                                     headers={"authorization": f"Bearer {keys.owner}"})
    assert response.status_code == 200
    assert response.json() == by_text


async def test_apollo_persisted_query_extension_runs_the_registered_text(api, keys):
    body = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_id(VIEWER)}}}
    response = await api.client.post("/graphql", json=body, headers={"authorization": f"Bearer {keys.owner}"})
    assert response.json()["data"]["viewer"]["role"] == "OWNER"


async def test_an_unknown_id_is_persisted_query_not_found(api, keys):
    for body in ({"documentId": "0" * 64},
                 {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "f" * 64}}},
                 {"documentId": document_id(VIEWER), "query": "{ __typename }"}):  # text and id disagree
        response = await api.client.post("/graphql", json=body, headers={"authorization": f"Bearer {keys.owner}"})
        errors = response.json()["errors"]
        assert errors[0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", errors


async def test_required_documents_refuse_free_text_for_partners_only(db, keys, settings):
    from dataclasses import replace

    async with make_client(db, replace(settings, trusted_documents="partner")) as api:
        refused = await api.post("{ viewer { role } }", token=keys.partner)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # The registered text itself passes this check (partners are then refused `viewer` by role, issue 9).
        registered = await api.post(VIEWER, token=keys.partner)
        assert all("registered documents" not in error["message"] for error in registered.get("errors") or [])
        assert "registered documents" in refused["errors"][0]["message"]
        assert (await api.post("{ viewer { role } }", token=keys.owner))["data"]["viewer"]["role"] == "OWNER"
    async with make_client(db, replace(settings, trusted_documents="all")) as api:
        refused = await api.post("{ viewer { role } }", token=keys.owner)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_the_setting_takes_off_partner_or_all():
    assert Settings.from_env({"BILLING_TRUSTED_DOCUMENTS": "partner"}).trusted_documents == "partner"
    assert Settings.from_env({}).trusted_documents == "off"
    try:
        Settings.from_env({"BILLING_TRUSTED_DOCUMENTS": "some"})
    except SettingsError as error:
        assert "BILLING_TRUSTED_DOCUMENTS" in str(error)
    else:
        raise AssertionError("an unknown value must be refused")


def test_building_the_plans_says_how_many_queries_were_compiled_or_that_there_are_none(caplog, tmp_path):
    import logging

    from billing_graphql.graphql.compiled import CompiledDocuments
    from billing_graphql.graphql.persisted import TrustedDocuments
    from billing_graphql.graphql.schema import schema

    with caplog.at_level(logging.INFO, logger="billing_graphql.graphql.compiled"):
        registered = CompiledDocuments.build(schema, TrustedDocuments.load())
        nothing = CompiledDocuments.build(schema, TrustedDocuments.load(tmp_path / "manifest.json"))
    info, warning = caplog.records
    assert info.levelname == "INFO"
    assert info.getMessage().startswith(f"compiled {len(registered.by_id)} registered queries from ")
    assert len(registered.by_id) > 0 and nothing.by_id == {}
    assert warning.levelname == "WARNING" and "no registered documents" in warning.getMessage()
    assert str(tmp_path / "manifest.json") in warning.getMessage()
