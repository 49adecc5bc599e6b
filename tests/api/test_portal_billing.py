"""The billing portal as a customer lives in it, over HTTP on both databases, with the test clock
on (links issued at the clock's time): the preview's "due now" is what is charged, past due with
"Pay now" and a new card retried at once, cards checked before they are saved, add-ons, coupons,
billing details, usage, English and Indonesian, and the ways a link ends."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from billing_graphql.app import create_app
from billing_graphql.db.models import (
    BillingDetails,
    Invoice,
    Payment,
    PaymentMethod,
    Subscription,
    SubscriptionAddon,
    TestClock,
)
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.http.portal.i18n import Formats
from tests.api.test_portal import SECRET
from tests.api.test_portal_forms import hidden_fields
from tests.factories import make_addon, make_coupon, make_invoice, make_payment_method, make_plan, make_subscription
from tests.helpers import GraphQLClient, gid, test_settings

APRIL_1 = datetime(2026, 4, 1, tzinfo=UTC)
SESSION = """mutation { createBillingPortalSession(input: {returnUrl: "https://app.example/billing"}) {
  url errors { code message } } }"""
SUBSCRIBE = """mutation($i: SubscribeInput!) { subscribe(input: $i) { errors { code message } } }"""
REVOKE = """mutation($i: RevokeBillingPortalSessionsInput) { revokeBillingPortalSessions(input: $i) {
  revoked errors { code field } } }"""
ADD_CARD = """mutation($i: AddPaymentMethodInput!) { addPaymentMethod(input: $i) {
  paymentMethod { id } errors { code field message } } }"""
DRY_RUN = """mutation($i: ChangePlanInput!) { changePlan(input: $i) { preview { amountDue { amount } }
  errors { code message } } }"""


@pytest.fixture
async def customer(db, database_url, keys):
    """The app with the test clock on (April 1, 2026, long before the real time) and a GraphQL
    client; ``customer.portal()`` opens a new portal link."""
    async with db.write() as session:
        session.add(TestClock(id=1, now=APRIL_1))
    settings = replace(test_settings(database_url, test_clock=True), portal_secret=SECRET,
                       public_url="https://billing.example")
    app = create_app(settings, db=db, freeze_gc=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield Customer(client, GraphQLClient(client, db), db, keys)


class Customer:
    def __init__(self, client, api, db, keys) -> None:
        self.client, self.api, self.db, self.keys = client, api, db, keys
        self.path = ""
        self.csrf = ""

    async def at(self, when: datetime) -> None:
        async with self.db.write() as session:
            await session.execute(update(TestClock).values(now=when))

    async def portal(self, token: str | None = None) -> str:
        created = (await self.api.ok(SESSION, token=token or self.keys.owner))["createBillingPortalSession"]
        assert created["errors"] == [], created
        self.path = httpx.URL(created["url"]).path
        page = await self.client.get(f"{self.path}/cards")
        assert page.status_code == 200, page.text
        self.csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
        return self.path

    async def get(self, page: str = "", **headers: str) -> httpx.Response:
        return await self.client.get(f"{self.path}{page}", headers=headers)

    async def post(self, action: str, **fields: str) -> httpx.Response:
        return await self.client.post(f"{self.path}/actions/{action}", data={"csrf": self.csrf, **fields})

    async def follow(self, response: httpx.Response) -> str:
        assert response.status_code == 303, response.text
        return (await self.client.get(response.headers["location"])).text


async def subscribe(customer: Customer, plan) -> None:
    done = await customer.api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}}, token=customer.keys.owner)
    assert done["subscribe"]["errors"] == [], done


def due_now(html: str) -> str:
    return re.search(r'Due now</th><td class="num"><strong>([^<]+)</strong>', html).group(1)


async def test_a_link_issued_at_the_test_clocks_time_opens_and_expires_by_that_clock(customer):
    await customer.portal()  # issued at April 1, 2026: long expired by the real clock
    assert (await customer.get()).status_code == 200
    await customer.at(APRIL_1 + timedelta(minutes=31))
    expired = await customer.get()
    assert expired.status_code == 403 and "This billing portal link has expired." in expired.text


async def test_the_charge_is_the_previews_due_now_when_the_clock_moved_in_between(customer, db, keys):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    starter = await make_plan(db, name="Starter", monthly=299000)
    growth = await make_plan(db, name="Growth", monthly=832767)
    await subscribe(customer, starter)
    await customer.at(datetime(2026, 4, 10, 13, 17, 23, tzinfo=UTC))
    await customer.portal()
    preview = await customer.post("preview-plan", plan_id=str(growth.id), period="MONTHLY")
    shown = due_now(preview.text)
    fields = hidden_fields(preview.text, "change-plan")

    # The customer reads the preview for 47 seconds; priced now, the change would cost less.
    await customer.at(datetime(2026, 4, 10, 13, 18, 10, tzinfo=UTC))
    later = (await customer.api.ok(DRY_RUN, {"i": {"planId": gid("Plan", growth.id), "dryRun": True}},
                                   token=keys.owner))["changePlan"]["preview"]["amountDue"]["amount"]
    assert Formats("en").money(int(later), "IDR") != shown  # the test would see the old bug

    done = await customer.post("change-plan", **fields)
    assert done.headers["location"].endswith("?notice=plan-changed")
    async with db.read() as session:
        invoice = await session.scalar(select(Invoice).order_by(Invoice.created_at.desc()).limit(1))
        payment = await session.scalar(select(Payment).where(Payment.invoice_id == invoice.id))
    assert Formats("en").money(payment.amount, "IDR") == shown
    assert Formats("en").money(invoice.total - invoice.credit_applied, "IDR") == shown


async def test_past_due_banner_pay_now_and_a_new_card_retried_at_once(customer, db, keys):
    await make_payment_method(db, keys.organization_id, token="pm_card_chargeDeclined")
    plan = await make_plan(db, name="Growth", monthly=1000000)
    subscription = await make_subscription(db, keys.organization_id, status=SubscriptionStatus.PAST_DUE, plan=plan,
                                           start=APRIL_1 - timedelta(days=3))
    invoice = await make_invoice(db, keys.organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription.id,
                                 created_at=APRIL_1 - timedelta(days=3))
    await customer.portal()
    page = (await customer.get()).text
    assert "Your last payment failed" in page and "Rp\xa01,110,000" in page and "Pay now" in page
    indonesian = (await customer.get("?lang=id")).text
    assert "Pembayaran terakhir Anda gagal" in indonesian and "Rp\xa01.110.000" in indonesian

    declined = await customer.post("pay-invoice", invoice_id=str(invoice.id), idempotency_key="first")
    assert "The payment was declined by your card&#39;s bank. Please try another card." in await customer.follow(declined)

    refused = await customer.post("add-card", token="pm_card_declined", label="", make_default="yes")
    assert refused.headers["location"].endswith("/cards?error=declined-card_declined")
    text = await customer.follow(refused)
    assert "Your card was declined. Nothing was saved; please use another card." in text

    added = await customer.post("add-card", token="pm_card_mastercard", label="", make_default="yes")
    assert added.headers["location"].endswith("/cards?notice=retried-paid")
    async with db.read() as session:
        paid = await session.get(Invoice, invoice.id)
        live = await session.get(Subscription, subscription.id)
        cards = [(m.gateway_payment_method_id, m.is_default, m.brand, m.last4, m.exp_month, m.exp_year)
                 for m in (await session.scalars(select(PaymentMethod).order_by(PaymentMethod.created_at))).all()]
    assert paid.status is InvoiceStatus.PAID and live.status is SubscriptionStatus.ACTIVE
    assert cards == [("pm_card_chargeDeclined", False, "visa", "4242", 12, 2099),
                     ("pm_card_mastercard", True, "mastercard", "4444", 12, 2034)]
    page = (await customer.get()).text
    assert "Your last payment failed" not in page and "Pay now" not in page
    listed = (await customer.get("/cards")).text
    assert "Mastercard •••• 4444" in listed and "12/2034" in listed and "Make default" in listed


async def test_a_declining_card_is_refused_when_saved_through_the_api_too(customer, keys):
    added = (await customer.api.ok(ADD_CARD, {"i": {"gateway": "sandbox", "gatewayPaymentMethodId": "pm_card_declined",
                                                    "type": "CREDIT_CARD"}}, token=keys.owner))["addPaymentMethod"]
    assert added["paymentMethod"] is None
    assert [(e["code"], e["field"]) for e in added["errors"]] == [("PAYMENT_FAILED", "gatewayPaymentMethodId")]
    assert "Your card was declined" in added["errors"][0]["message"]


async def test_make_default_and_remove_cards(customer, db, keys):
    visa = await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    other = await make_payment_method(db, keys.organization_id, token="pm_card_mastercard", is_default=False)
    await subscribe(customer, await make_plan(db, name="Basic", monthly=100000))
    await customer.portal()
    in_use = await customer.post("remove-card", payment_method_id=str(visa.id))
    assert "Make another card the default first" in await customer.follow(in_use)
    made = await customer.post("default-card", payment_method_id=str(other.id))
    assert made.headers["location"].endswith("/cards?notice=card-default")
    removed = await customer.post("remove-card", payment_method_id=str(visa.id))
    assert "The card has been removed." in await customer.follow(removed)
    async with db.read() as session:
        assert [(m.id, m.is_default) for m in (await session.scalars(select(PaymentMethod))).all()] == [
            (other.id, True)]


async def test_addon_preview_then_added_and_removed_with_its_prorated_amounts(customer, db, keys):
    await make_payment_method(db, keys.organization_id)
    await subscribe(customer, await make_plan(db, name="Basic", monthly=300000))
    addon = await make_addon(db, name="Extra channel", monthly=90000)
    await customer.at(APRIL_1 + timedelta(days=15))  # half of April's 30 days left
    await customer.portal()
    preview = await customer.post("preview-addon", addon_id=str(addon.id), quantity="1")
    assert "Add Extra channel" in preview.text and due_now(preview.text) == "Rp\xa049,950"  # 45,000 + PPN 11%
    async with db.read() as session:
        assert await session.scalar(select(SubscriptionAddon.id)) is None  # a preview writes nothing
    added = await customer.post("change-addon", **hidden_fields(preview.text, "change-addon"))
    assert added.headers["location"].endswith("/plan?notice=addon-changed")
    page = (await customer.get("/plan")).text
    assert "Added" in page and 'Remove<span class="visually-hidden"> Extra channel</span>' in page
    removal = await customer.post("preview-addon", addon_id=str(addon.id), quantity="0")
    assert "Remove Extra channel" in removal.text and "Account credit" in removal.text
    removed = await customer.post("change-addon", **hidden_fields(removal.text, "change-addon"))
    assert removed.headers["location"].endswith("/plan?notice=addon-changed")
    async with db.read() as session:
        assert await session.scalar(select(SubscriptionAddon.id)) is None


async def test_apply_a_coupon(customer, db, keys):
    await make_payment_method(db, keys.organization_id)
    await subscribe(customer, await make_plan(db, name="Basic", monthly=300000))
    await make_coupon(db, code="HEMAT20", percent_off=20, now=APRIL_1 - timedelta(days=1))
    await customer.portal()
    wrong = await customer.post("apply-coupon", coupon_code="NOPE")
    assert "This coupon code is not valid." in await customer.follow(wrong)
    applied = await customer.post("apply-coupon", coupon_code="hemat20")
    assert "The coupon has been applied; it takes effect on your next invoice." in await customer.follow(applied)
    assert "HEMAT20" in (await customer.get()).text
    again = await customer.post("apply-coupon", coupon_code="HEMAT20")
    assert "This coupon cannot be used on your subscription." in await customer.follow(again)


async def test_billing_details_with_the_npwp_checked_as_the_api_checks_it(customer, db, keys):
    await customer.portal()
    fields = {"legal_name": "PT Acme Indonesia", "address": "Jl. Sudirman 1\nJakarta", "country": "ID"}
    wrong = await customer.post("update-details", **fields, tax_id="01.234.567")
    assert wrong.headers["location"].endswith("/details?error=tax-id")
    assert "An Indonesian tax number (NPWP) has 15 or 16 digits." in await customer.follow(wrong)
    async with db.read() as session:
        assert await session.get(BillingDetails, keys.organization_id) is None  # nothing written
    saved = await customer.post("update-details", **fields, tax_id="01.234.567.8-901.234")
    assert "Your billing details have been saved." in await customer.follow(saved)
    async with db.read() as session:
        details = await session.get(BillingDetails, keys.organization_id)
    assert (details.legal_name, details.country) == ("PT Acme Indonesia", "ID")
    page = (await customer.get("/details", **{"accept-language": "id-ID,id;q=0.9,en;q=0.5"})).text
    assert 'lang="id"' in page and "Data penagihan" in page and "PT Acme Indonesia" in page
    # An admin's link shows them; only owners change them (as updateBillingDetails allows).
    await customer.portal(keys.admin)
    page = (await customer.get("/details")).text
    assert "PT Acme Indonesia" in page and "Save the billing details" not in page
    refused = await customer.post("update-details", legal_name="Someone else")
    assert "Only the organization&#39;s owners can change the billing details." in await customer.follow(refused)
    async with db.read() as session:
        assert (await session.get(BillingDetails, keys.organization_id)).legal_name == "PT Acme Indonesia"


async def test_usage_bars_against_the_limits_for_the_billing_period(customer, db, keys):
    await make_payment_method(db, keys.organization_id)
    await subscribe(customer, await make_plan(db, name="Basic", monthly=1663890, limits={"contacts": 1000,
                                                                                         "messages": None}))
    record = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) { accepted errors { code } } }"""
    events = [{"metric": "contacts", "quantity": 950, "timestamp": APRIL_1.isoformat(), "idempotencyKey": "c"},
              {"metric": "messages", "quantity": 12345, "timestamp": APRIL_1.isoformat(), "idempotencyKey": "m"}]
    assert (await customer.api.ok(record, {"i": {"events": events}}, token=keys.owner))["recordUsage"]["accepted"] == 2
    await customer.portal()
    page = (await customer.get()).text
    assert "950 of 1,000" in page and 'aria-valuenow="95"' in page and "12,345 used (no limit)" in page
    assert "Counted from April 1, 2026 to May 1, 2026." in page
    indonesian = (await customer.get("?lang=id")).text
    assert "950 dari 1.000" in indonesian and "Dihitung dari 1 April 2026 sampai 1 Mei 2026." in indonesian
    plans = (await customer.get("/plan?lang=id")).text
    assert "Rp\xa01.663.890 per bulan" in plans


async def test_revoking_the_sessions_or_the_api_key_ends_the_link(customer, db, keys):
    first = await customer.portal()
    revoked = (await customer.api.ok(REVOKE, {"i": {}}, token=keys.owner))["revokeBillingPortalSessions"]
    assert revoked == {"revoked": True, "errors": []}
    ended = await customer.client.get(first)
    assert ended.status_code == 403 and "This billing portal link has been ended." in ended.text
    ended_id = await customer.client.get(first + "?lang=id")
    assert "Tautan portal penagihan ini telah diakhiri." in ended_id.text
    second = await customer.portal()  # a link issued afterwards works
    assert (await customer.client.get(second)).status_code == 200
    # another organization's revocation is not the owner's to make, nor does it touch this link
    foreign = (await customer.api.ok(REVOKE, {"i": {"organizationId": gid("Organization", keys.other_organization_id)}},
                                     token=keys.owner))["revokeBillingPortalSessions"]
    assert foreign == {"revoked": False, "errors": [{"code": "NOT_FOUND", "field": "organizationId"}]}
    assert (await customer.client.get(second)).status_code == 200
    # the API key that asked for the link is revoked (by the owner, through the API): the link ends with it
    from billing_graphql.db.models import ApiKey
    from billing_graphql.domain.roles import Role

    admin_link = await customer.portal(keys.admin)
    async with db.read() as session:
        admin_key = await session.scalar(select(ApiKey.id).where(ApiKey.organization_id == keys.organization_id,
                                                                 ApiKey.role == Role.ADMIN))
    gone = (await customer.api.ok("mutation($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { errors { code } } }",
                                  {"i": {"id": gid("ApiKey", admin_key)}}, token=keys.owner))["revokeApiKey"]
    assert gone["errors"] == []
    ended = await customer.client.get(admin_link)
    assert ended.status_code == 403 and "has been ended" in ended.text
    assert (await customer.client.post(admin_link + "/actions/resume", data={"csrf": "x"})).status_code == 403
    assert (await customer.client.get(second)).status_code == 200  # the owner's link lives on


async def test_credit_notes_listed_with_their_pdfs_and_the_documents_language_chosen_and_followed(customer, db, keys):
    import uuid

    from tests.api.test_credit_note_pdf import _credit_note
    from tests.api.test_invoice_pdf import pdf_text

    note, note_id = await _credit_note(customer.api, db, keys)
    await customer.portal()
    page = (await customer.get("/invoices")).text
    assert "Credit notes" in page and note["number"] in page
    assert f'{customer.path}/credit-notes/{note_id}.pdf' in page
    pdf = await customer.get(f"/credit-notes/{note_id}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["referrer-policy"] == "no-referrer" and note["number"] in pdf_text(pdf.content)
    assert (await customer.get(f"/credit-notes/{uuid.uuid4()}.pdf")).status_code == 404
    # the documents' language, chosen on the details page; the portal follows it when the browser says nothing
    assert '<option value="id" lang="id">Bahasa Indonesia</option>' in (await customer.get("/details")).text
    saved = await customer.post("update-details", legal_name="PT Acme Indonesia", country="ID", language="id")
    assert saved.headers["location"].endswith("/details?notice=details-saved")
    async with db.read() as session:
        assert (await session.get(BillingDetails, keys.organization_id)).language == "id"
    assert "Data penagihan" in (await customer.get("/details")).text
    assert "Billing details" in (await customer.get("/details", **{"accept-language": "en-US"})).text
    wrong = await customer.post("update-details", language="fr")
    assert "error=" in wrong.headers["location"]
    async with db.read() as session:
        assert (await session.get(BillingDetails, keys.organization_id)).language == "id"  # nothing written
