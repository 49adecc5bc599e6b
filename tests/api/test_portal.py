"""The billing portal: session creation over GraphQL and the page it links to."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from billing_graphql.app import create_app
from billing_graphql.db.models import AuditEvent
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.portal.sessions import create_portal_session
from tests.helpers import T0, GraphQLClient
from tests.factories import (
    count_rows,
    make_invoice,
    make_organization,
    make_payment_method,
    make_plan,
    make_subscription,
)

SECRET = "portal-secret-for-tests-0123456789"
CREATE = """
mutation Portal($input: CreateBillingPortalSessionInput!) {
  createBillingPortalSession(input: $input) { url expiresAt errors { code message field } }
}
"""


@pytest.fixture
async def portal_api(db, settings):
    configured = replace(settings, portal_secret=SECRET, public_url="https://billing.example")
    app = create_app(configured, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield GraphQLClient(client, db)


async def new_session(api, token, return_url="https://app.example/settings/billing") -> dict:
    return (await api.ok(CREATE, {"input": {"returnUrl": return_url}}, token=token))["createBillingPortalSession"]


def path_of(url: str) -> str:
    return urlsplit(url).path


async def test_session_url_leads_to_the_organizations_billing_page(portal_api, db, keys):
    plan = await make_plan(db, name="Growth")
    await make_subscription(db, keys.organization_id, status=SubscriptionStatus.ACTIVE, plan=plan)
    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000011")
    await make_invoice(db, keys.organization_id, status=InvoiceStatus.DRAFT)
    await make_payment_method(db, keys.organization_id, is_default=True, label="Company Visa")
    theirs = await make_invoice(db, keys.other_organization_id, number="INV-202601-000099")

    created = await new_session(portal_api, keys.owner)
    assert created["errors"] == []
    assert created["url"].startswith("https://billing.example/portal/")
    assert created["expiresAt"] is not None
    assert await count_rows(db, AuditEvent) >= 1

    page = await portal_api.client.get(path_of(created["url"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    for expected in ("Billing for Acme", "Growth", "Active", "Renews on", "February 15, 2026", "Visa •••• 4242",
                     "expires 12/2099"):
        assert expected in html, expected
    assert 'href="https://app.example/settings/billing"' in html
    cards = (await portal_api.client.get(path_of(created["url"]) + "/cards")).text
    for expected in ("Company Visa", "Default", "Visa •••• 4242", "12/2099"):
        assert expected in cards, expected
    html = (await portal_api.client.get(path_of(created["url"]) + "/invoices")).text
    assert "INV-202601-000011" in html and "INV-202601-000099" not in html
    assert html.count(">PDF</a>") == 1  # drafts are not listed
    [pdf_link] = re.findall(r'href="(/portal/[^"]+\.pdf)"', html)
    pdf = await portal_api.client.get(pdf_link)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert str(invoice.id) in pdf_link
    # The same token does not open another organization's invoice.
    foreign = await portal_api.client.get(pdf_link.replace(str(invoice.id), str(theirs.id)))
    assert foreign.status_code == 404


async def test_everything_on_the_page_is_escaped(portal_api, db, settings):
    organization = await make_organization(db, name="<script>alert('x')</script>")
    await make_payment_method(db, organization.id, is_default=True, label='"><img src=x onerror=alert(1)>')
    actor = Actor(role=Role.OWNER, organization_id=organization.id, subject="user:t")
    configured = replace(settings, portal_secret=SECRET)
    from datetime import UTC, datetime

    session = await create_portal_session(
        db, actor, return_url='https://app.example/back?a="><script>x</script>', settings=configured,
        now=datetime.now(UTC),
    )
    html = (await portal_api.client.get(path_of(session.url))).text
    html += (await portal_api.client.get(path_of(session.url) + "/cards")).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the label, on the cards page, escaped
    assert "<script>alert" not in html and "<img src=x" not in html and "<script>x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert 'href="https://app.example/back?a=&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in html


async def test_expired_forged_and_foreign_links_get_a_403_page(portal_api, db, keys, settings):
    configured = replace(settings, portal_secret=SECRET)
    actor = Actor(role=Role.OWNER, organization_id=keys.organization_id, subject="user:t")
    expired = await create_portal_session(db, actor, return_url="https://app.example", settings=configured,
                                          now=T0 - timedelta(hours=1))
    response = await portal_api.client.get(path_of(expired.url))
    assert response.status_code == 403
    assert "expired" in response.text and "open the billing portal again" in response.text
    assert response.headers["content-type"].startswith("text/html")

    good = await new_session(portal_api, keys.owner)
    token = path_of(good["url"]).rsplit("/", 1)[1]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="billing-portal")
    forged = jwt.encode({**claims, "org": str(keys.other_organization_id)}, "another-secret-of-some-length-0123456", "HS256")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, tampered, "not-a-token"):
        response = await portal_api.client.get(f"/portal/{bad}")
        assert response.status_code == 403
        assert "not valid" in response.text
        pdf = await portal_api.client.get(f"/portal/{bad}/invoices/{keys.organization_id}.pdf")
        assert pdf.status_code == 403


async def test_portal_error_without_a_secret_and_links_die_with_it(api, portal_api, keys):
    result = (await api.ok(CREATE, {"input": {"returnUrl": "https://app.example"}}, token=keys.owner))
    result = result["createBillingPortalSession"]
    assert result["url"] is None
    assert [e["code"] for e in result["errors"]] == ["PORTAL_ERROR"]
    link = (await new_session(portal_api, keys.owner))["url"]
    # The app without a portal secret refuses the link (cleanly, with a page).
    response = await api.client.get(path_of(link))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "return_url", ["javascript:alert(1)", "ftp://files.example", "/relative/path", "https://", "https://a b.example", ""]
)
async def test_return_url_must_be_http_or_https(portal_api, keys, return_url):
    result = await new_session(portal_api, keys.owner, return_url)
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", "returnUrl")]
    assert result["url"] is None


async def test_only_owners_and_admins_open_the_portal(portal_api, keys):
    assert (await new_session(portal_api, keys.admin))["errors"] == []
    for token, code in ((keys.member, "FORBIDDEN"), (keys.super_admin, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await portal_api.post(CREATE, {"input": {"returnUrl": "https://app.example"}}, token=token)
        assert result["data"] == {"createBillingPortalSession": None}
        assert result["errors"][0]["extensions"]["code"] == code


async def test_page_without_subscription_or_methods(portal_api, keys):
    html = (await portal_api.client.get(path_of((await new_session(portal_api, keys.owner))["url"]))).text
    assert "No active subscription." in html
    assert "No card saved." in html
    path = path_of((await new_session(portal_api, keys.owner))["url"])
    assert "No invoices yet." in (await portal_api.client.get(path + "/invoices")).text
