"""billingDetails on the organization: owners edit it; invoices copy it when finalized; the PDF prints it."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select

from billing_graphql.app import create_app
from billing_graphql.db.models import AuditEvent, BillingDetails
from billing_graphql.services.billing.invoice_documents import invoice_pdf_path
from tests.api.test_invoice_pdf import pdf_text
from tests.api.test_subscriptions_api import SUBSCRIBE, plan_gid
from tests.factories import make_payment_method, make_plan
from tests.helpers import GraphQLClient

UPDATE = """mutation($i: UpdateBillingDetailsInput!) { updateBillingDetails(input: $i) {
  billingDetails { legalName address country taxId } errors { code field message } } }"""
DETAILS = "{ viewer { organization { billingDetails { legalName address country taxId } } } }"
INVOICE = "query($id: ID!) { invoice(id: $id) { invoiceNumber billingDetails { legalName address country taxId } } }"

ACME = {"legalName": "PT Acme Indonesia", "address": "Jl. Sudirman 1\nJakarta 10220", "country": "id",
        "taxId": "01.234.567.8-901.000"}


async def details_rows(db) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(BillingDetails))


async def test_owner_sets_details_and_members_read_them(api, keys, db):
    empty = await api.ok(DETAILS, token=keys.member)
    assert empty["viewer"]["organization"]["billingDetails"] == {
        "legalName": None, "address": None, "country": None, "taxId": None}
    payload = (await api.ok(UPDATE, {"i": ACME}, token=keys.owner))["updateBillingDetails"]
    assert payload["errors"] == []
    assert payload["billingDetails"] == {**ACME, "country": "ID"}
    read = await api.ok(DETAILS, token=keys.member)
    assert read["viewer"]["organization"]["billingDetails"]["legalName"] == "PT Acme Indonesia"
    # left out: kept; empty: cleared
    cleared = (await api.ok(UPDATE, {"i": {"address": ""}}, token=keys.owner))["updateBillingDetails"]
    assert cleared["billingDetails"]["address"] is None and cleared["billingDetails"]["taxId"] == ACME["taxId"]
    async with db.read() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEvent)
                                      .where(AuditEvent.action == "organization.billing_details_updated"))
    assert audits == 2


@pytest.mark.parametrize(("values", "field"), [
    ({"country": "Indonesia"}, "country"),
    ({"country": "ID", "taxId": "12345"}, "taxId"),  # an NPWP has 15 or 16 digits
    ({"legalName": "x" * 201}, "legalName"),
    ({"taxId": "<script>"}, "taxId"),
])
async def test_bad_details_are_validation_errors_and_write_nothing(api, keys, db, values, field):
    payload = (await api.ok(UPDATE, {"i": values}, token=keys.owner))["updateBillingDetails"]
    assert [(error["code"], error["field"]) for error in payload["errors"]] == [("VALIDATION", field)]
    assert payload["billingDetails"] is None
    assert await details_rows(db) == 0


async def test_control_characters_are_refused_where_input_enters(api, keys, db):
    result = await api.post(UPDATE, {"i": {"legalName": "PT Acme\u0000"}}, token=keys.owner)
    assert result["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in result["errors"]] == [
        ("VALIDATION", "input.legalName")]
    assert await details_rows(db) == 0


async def test_super_admin_names_the_organization(api, keys):
    missing = (await api.ok(UPDATE, {"i": {"legalName": "X"}}, token=keys.super_admin))["updateBillingDetails"]
    assert missing["errors"][0]["field"] == "organizationId"
    named = (await api.ok(UPDATE, {"i": {"legalName": "Acme Ltd", "organizationId": keys.organization_gid}},
                          token=keys.super_admin))["updateBillingDetails"]
    assert named["errors"] == [] and named["billingDetails"]["legalName"] == "Acme Ltd"


async def test_invoice_copies_details_at_finalization_and_pdf_prints_them(api, keys, db, settings):
    await api.ok(UPDATE, {"i": ACME}, token=keys.owner)
    await make_payment_method(db, keys.organization_id)
    plan = await make_plan(db, name="Starter", trial_days=0)
    invoice = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plan)}}, token=keys.owner))["subscribe"]["invoice"]
    # later changes do not reach a finalized invoice
    await api.ok(UPDATE, {"i": {"legalName": "PT Acme Baru"}}, token=keys.owner)
    read = (await api.ok(INVOICE, {"id": invoice["id"]}, token=keys.admin))["invoice"]
    assert read["billingDetails"] == {**ACME, "country": "ID"}

    app = create_app(replace(settings, seller_tax_id="09.876.543.2-101.000", seller_name="PT Gateway"), db=db,
                     freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        from strawberry import relay

        invoice_id = relay.GlobalID.from_id(invoice["id"]).node_id
        response = await client.get(invoice_pdf_path(invoice_id), headers={"authorization": f"Bearer {keys.owner}"})
    assert response.status_code == 200
    text = pdf_text(response.content)
    for expected in ("PT Acme Indonesia", "Jl. Sudirman 1", "Jakarta 10220", "NPWP: 01.234.567.8-901.000",
                     "PT Gateway", "Tax ID (NPWP): 09.876.543.2-101.000"):
        assert expected in text, (expected, text)
    assert "PT Acme Baru" not in text


async def test_invoices_without_details_have_none(api, keys, db):
    await make_payment_method(db, keys.organization_id)
    plan = await make_plan(db, trial_days=0)
    invoice = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plan)}}, token=keys.owner))["subscribe"]["invoice"]
    read = (await api.ok(INVOICE, {"id": invoice["id"]}, token=keys.owner))["invoice"]
    assert read["billingDetails"] is None


LANGUAGE = """mutation($i: UpdateBillingDetailsInput!) { updateBillingDetails(input: $i) {
  billingDetails { language taxId } errors { code field message } } }"""


async def test_language_is_english_until_set_and_only_en_or_id(api, keys, db):
    read = await api.ok("{ viewer { organization { billingDetails { language } } } }", token=keys.member)
    assert read["viewer"]["organization"]["billingDetails"] == {"language": "en"}
    payload = (await api.ok(LANGUAGE, {"i": {"language": "ID"}}, token=keys.owner))["updateBillingDetails"]
    assert payload == {"billingDetails": {"language": "id", "taxId": None}, "errors": []}
    kept = (await api.ok(LANGUAGE, {"i": {"legalName": "PT Acme"}}, token=keys.owner))["updateBillingDetails"]
    assert kept["billingDetails"]["language"] == "id"
    for bad in ("fr", "", "bahasa"):
        refused = (await api.ok(LANGUAGE, {"i": {"language": bad, "legalName": "Changed"}},
                                token=keys.owner))["updateBillingDetails"]
        assert [(error["code"], error["field"]) for error in refused["errors"]] == [("VALIDATION", "language")]
        assert refused["billingDetails"] is None
    async with db.read() as session:
        row = await session.get(BillingDetails, keys.organization_id)
    assert (row.language, row.legal_name) == ("id", "PT Acme")  # nothing written by the refused ones


async def test_the_database_refuses_an_unknown_language(db, keys):
    from datetime import UTC, datetime

    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with db.write() as session:
            session.add(BillingDetails(organization_id=keys.organization_id, language="fr",
                                       updated_at=datetime.now(UTC)))
