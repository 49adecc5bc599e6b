"""Invoice lines in the document's language: the lines the services write carry what they bill as
structure (``invoice_lines.detail``), and an Indonesian PDF renders each from it, while the API's
``description`` keeps the English sentence clients depend on. Lines without structure (a one-off
charge's own text, lines written before migration 0021) keep their description. Over HTTP, on
both databases, through the real subscribe, add-on and plan-change services."""

from __future__ import annotations

from datetime import timedelta

from strawberry.relay import GlobalID

from billing_graphql.domain.language import Language
from billing_graphql.domain.line_text import line_text
from billing_graphql.services.billing.credit_notes import credit_note_pdf_path
from billing_graphql.services.billing.invoice_documents import invoice_pdf_path
from tests.api.test_credit_notes_api import CREATE as CREATE_NOTE
from tests.api.test_invoice_pdf import pdf_text
from tests.api.test_subscriptions_api import ATTACH, CHANGE, SUBSCRIBE, plan_gid
from tests.factories import make_addon, make_payment_method, make_plan
from tests.helpers import T0, gid


async def pdf_of(api, invoice_id: str, token: str) -> str:
    response = await api.client.get(invoice_pdf_path(GlobalID.from_id(invoice_id).node_id),
                                    headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return pdf_text(response.content)


async def test_an_indonesian_pdf_renders_each_line_from_its_structure_and_the_api_keeps_english(api, db, keys):
    from billing_graphql.services.platform.billing_details import update_billing_details

    await update_billing_details(db, None, organization_id=keys.organization_id, legal_name="PT Acme Indonesia",
                                 address="Jl. Gajah Mada 10", country="ID", language="id", now=T0 - timedelta(days=1))
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    starter = await make_plan(db, name="Starter", monthly=299000, per_agent=50000, included_agents=1)
    growth = await make_plan(db, name="Growth", monthly=599000, per_agent=50000, included_agents=1)
    channel = await make_addon(db, name="Extra channel", monthly=90000)

    subscribed = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(starter)}}, token=keys.owner))["subscribe"]
    assert subscribed["errors"] == []
    first = subscribed["invoice"]
    assert [line["description"] for line in first["lines"]] == ["Starter plan (monthly)"]  # the API: English
    text = await pdf_of(api, first["id"], keys.owner)
    assert "Paket Starter (bulanan)" in text and "Starter plan (monthly)" not in text, text
    # A credit note crediting that line says what it credits in Indonesian too.
    lines = (await api.ok("query($id: ID!) { invoice(id: $id) { lines { id } } }", {"id": first["id"]},
                          token=keys.owner))["invoice"]["lines"]
    noted = (await api.ok(CREATE_NOTE, {"input": {"invoiceId": first["id"], "reason": "OTHER",
                                                  "lines": [{"invoiceLineId": lines[0]["id"], "amount": "55500"}],
                                                  "outcome": "CREDIT_BALANCE"}},
                          token=keys.super_admin))["createCreditNote"]
    assert noted["errors"] == [] and noted["creditNote"]["lines"][0]["description"] == "Starter plan (monthly)"
    response = await api.client.get(credit_note_pdf_path(GlobalID.from_id(noted["creditNote"]["id"]).node_id),
                                    headers={"authorization": f"Bearer {keys.owner}"})
    text = pdf_text(response.content)
    assert "Nota kredit" in text and "Paket Starter (bulanan)" in text and "plan (monthly)" not in text, text

    attached = (await api.ok(ATTACH, {"i": {"addonId": gid("Addon", channel.id)}}, token=keys.owner))["attachAddon"]
    assert attached["errors"] == []
    assert [line["description"] for line in attached["invoice"]["lines"]] == [
        "Remaining time on Extra channel add-on x 1 (monthly)"]
    text = await pdf_of(api, attached["invoice"]["id"], keys.owner)
    assert "Sisa waktu pada Add-on Extra channel x 1 (bulanan)" in text and "Remaining time" not in text, text

    changed = (await api.ok(CHANGE, {"i": {"planId": plan_gid(growth), "period": "ANNUAL"}},
                            token=keys.owner))["changePlan"]
    assert changed["errors"] == []
    descriptions = [line["description"] for line in changed["invoice"]["lines"]]
    assert descriptions[:2] == ["Unused time on Starter (monthly)", "Growth (annual), new period"], descriptions
    text = await pdf_of(api, changed["invoice"]["id"], keys.owner)
    for indonesian in ("Waktu tidak terpakai pada Paket Starter (bulanan)", "Paket Growth (tahunan), periode baru"):
        assert indonesian in text, (indonesian, text)
    for english in ("Unused time", "new period", "(annual)", "(monthly)"):
        assert english not in text, (english, text)


async def test_an_english_pdf_keeps_the_stored_sentences(api, db, keys):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    starter = await make_plan(db, name="Starter", monthly=299000)
    invoice = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(starter)}}, token=keys.owner))["subscribe"]["invoice"]
    text = await pdf_of(api, invoice["id"], keys.owner)
    assert "Starter plan (monthly)" in text and "Paket" not in text


def test_line_text_for_seats_usage_and_lines_without_structure():
    seats = {"included": 1000, "period": "ANNUAL"}
    assert line_text("Agents above the 1000 included (annual)", seats, Language.ID) == \
        "Agen di atas 1.000 yang termasuk (tahunan)"
    assert line_text("Agents above the 1000 included (annual)", seats, Language.EN) == \
        "Agents above the 1000 included (annual)"
    usage = {"metric": "Messages", "model": "GRADUATED", "package_size": None, "included": 10000, "capped": True}
    assert line_text("x", usage, Language.ID) == \
        "Messages (tarif bertingkat) di atas 10.000 yang termasuk per bulan (dibatasi batas pengeluaran)"
    package = {"metric": "API calls", "model": "PACKAGE", "package_size": 1000, "included": None, "capped": False}
    assert line_text("x", package, Language.ID) == "API calls dalam paket 1.000"
    per_agent = {"addon": "Priority support", "per_agent": True, "period": "MONTHLY"}
    assert line_text("x", per_agent, Language.ID) == "Add-on Priority support, per agen (bulanan)"
    assert line_text("Team training", None, Language.ID) == "Team training"  # a one-off charge's own text
    assert line_text("Legacy line", {"something": "else"}, Language.ID) == "Legacy line"
    assert line_text("Unused time on X", {"proration": "unused", "of": None}, Language.ID) == "Unused time on X"


async def test_the_portals_preview_shows_the_lines_in_its_language(db, keys, settings):
    """A plan change's preview in the Indonesian portal: the proration lines from their structure."""
    import re
    from dataclasses import replace

    import httpx

    from billing_graphql.app import create_app
    from tests.api.test_portal import SECRET, new_session, path_of
    from tests.helpers import GraphQLClient

    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    starter = await make_plan(db, name="Starter", monthly=299000)
    growth = await make_plan(db, name="Growth", monthly=599000)
    configured = replace(settings, portal_secret=SECRET, public_url="https://billing.example")
    app = create_app(configured, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        api = GraphQLClient(client, db)
        assert (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(starter)}}, token=keys.owner))["subscribe"][
            "errors"] == []
        path = path_of((await new_session(api, keys.owner))["url"])
        page = await client.get(f"{path}/plan?lang=id")
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
        preview = await client.post(f"{path}/actions/preview-plan?lang=id",
                                    data={"csrf": csrf, "plan_id": str(growth.id), "period": "MONTHLY"})
    assert preview.status_code == 200
    assert "Waktu tidak terpakai pada Paket Starter (bulanan)" in preview.text, preview.text
    assert "Sisa waktu pada Paket Growth (bulanan)" in preview.text and "Unused time" not in preview.text
