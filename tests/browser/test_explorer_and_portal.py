"""In chromium: GraphiQL served offline runs a query; the portal page, an invoice PDF and a credit note PDF open."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import httpx

from tests.factories import make_payment_method, make_plan
from tests.helpers import gid

SUBSCRIBE = """mutation($i: SubscribeInput!) { subscribe(input: $i) { invoice { invoiceNumber } errors { code } } }"""
PORTAL = """mutation { createBillingPortalSession(input: {returnUrl: "https://app.example.com/billing"}) {
  url errors { code message } } }"""


def graphql(served, token: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{served.url}/graphql", json={"query": query, "variables": variables or {}},
                          headers={"authorization": f"Bearer {token}"}, timeout=30)
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def test_graphiql_offline_runs_a_query_with_the_authorization_header(served, keys, page):
    html = httpx.get(f"{served.url}/graphql", headers={"accept": "text/html"}, timeout=30)
    assert html.status_code == 200 and "unpkg" not in html.text and "https://" not in html.text.split("<body>")[0]
    policy = html.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy and "https:" not in policy

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    headers = json.dumps({"Authorization": f"Bearer {keys.owner}"})
    await page.goto(f"{served.url}/graphql?" + urlencode({"q": "{ viewer { role } }", "headers": headers},
                                                           quote_via=quote))
    await page.locator(".graphiql-execute-button").click(timeout=30_000)
    result = page.locator(".result-window")
    await result.get_by_text('"OWNER"').wait_for(timeout=30_000)
    assert '"role": "OWNER"' in " ".join((await result.inner_text()).split())
    assert requested and all(url.startswith(served.url) or url.startswith("data:") for url in requested), requested
    assert any("/graphql/assets/graphiql/graphiql.min.js" in url for url in requested)
    assert violations == []


async def test_portal_page_and_invoice_pdf(served, keys, db, page):
    await make_payment_method(db, keys.organization_id)
    plan = await make_plan(db, name="Starter", trial_days=0)
    number = graphql(served, keys.owner, SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}})["subscribe"]["invoice"][
        "invoiceNumber"]
    url = graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"]
    await page.goto(url)
    await page.get_by_role("heading", name="Billing for Acme").wait_for(timeout=30_000)
    await page.get_by_role("link", name="Invoices").click()
    await page.get_by_role("heading", name="Invoices", exact=True).first.wait_for(timeout=30_000)
    assert number in await page.content()
    async with page.expect_response(lambda response: response.url.endswith(".pdf")) as waiting:
        try:
            await page.get_by_role("link", name=f"PDF of {number}").click()
        except Exception:  # noqa: BLE001 - a PDF may start a download instead of a navigation
            pass
    response = await waiting.value
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    # chromium shows it in its PDF viewer; the bytes behind the same link (with the browser's context):
    assert (await (await page.request.get(response.url)).body()).startswith(b"%PDF-")


CREDIT = """mutation($i: CreateCreditNoteInput!) { createCreditNote(input: $i) { creditNote { number pdfUrl }
  errors { code } } }"""


async def test_credit_note_pdf_opens_in_chromium(served, keys, db, page):
    """A credit note's pdfUrl, opened by chromium with the owner's Authorization header."""
    from tests.factories import Line, make_invoice, make_payment

    invoice = await make_invoice(db, keys.organization_id, lines=[Line("Growth plan, monthly", 100_000)])
    await make_payment(db, invoice)
    note = graphql(served, keys.super_admin, CREDIT, {"i": {"invoiceId": gid("Invoice", invoice.id), "amount": "55500",
                                                            "reason": "OTHER", "outcome": "CREDIT_BALANCE"}}
                   )["createCreditNote"]["creditNote"]
    path = note["pdfUrl"].split("://", 1)[1].split("/", 1)[1]
    await page.set_extra_http_headers({"authorization": f"Bearer {keys.owner}"})
    async with page.expect_response(lambda response: response.url.endswith(".pdf")) as waiting:
        try:
            await page.goto(f"{served.url}/{path}")
        except Exception:  # noqa: BLE001 - a PDF may start a download instead of a navigation
            pass
    response = await waiting.value
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'inline; filename="{note["number"]}.pdf"'
    # chromium shows it in its PDF viewer; the bytes behind the same URL, with the same header:
    fetched = await page.request.get(response.url, headers={"authorization": f"Bearer {keys.owner}"})
    assert (await fetched.body()).startswith(b"%PDF-")
