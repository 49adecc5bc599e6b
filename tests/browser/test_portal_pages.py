"""The billing portal in chromium, as a customer uses it: every page and every action at desktop
(1280 px) and phone (390 px) widths, each page checked with axe-core (no serious or critical
violation) and photographed into the artefacts directory (``artifacts`` fixture). The pages carry
no script but the usage bars' (kept live where JavaScript is on): the forms work without JavaScript (axe is
injected by the test)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from billing_graphql.db.models import Subscription
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from tests.browser.test_explorer_and_portal import PORTAL, SUBSCRIBE, graphql
from tests.factories import make_addon, make_coupon, make_invoice, make_payment_method, make_plan
from tests.helpers import gid

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
RECORD = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) { accepted errors { code } } }"""


class Shots:
    """Screenshots and axe checks of one width, numbered in the order taken."""

    def __init__(self, page, directory: Path, width: str, axe_script: Path, backend: str) -> None:
        self.page, self.directory, self.width, self.axe, self.backend = page, directory, width, axe_script, backend
        self.count = 0
        self.checked: list[str] = []

    async def take(self, name: str, *, check: bool = True) -> None:
        self.count += 1
        await self.page.wait_for_load_state("load")
        path = self.directory / f"portal-{self.backend}-{self.width}-{self.count:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        if check:
            await self.check(name)

    async def check(self, name: str) -> None:
        # no script but the usage bars' own (test_portal_live_usage): forms work without JavaScript
        assert await self.page.locator('script:not([src="/portal-assets/usage-live.js"])').count() == 0, name
        await self.page.add_script_tag(path=str(self.axe))
        result = await self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}))")
        bad = [violation for violation in result if violation["impact"] in ("serious", "critical")]
        assert bad == [], f"{self.width} {name}: {json.dumps(bad, indent=1)}"
        self.checked.append(name)


async def open_invoice(db, organization_id, subscription_id) -> None:
    """A renewal that failed: an OPEN invoice and the subscription PAST_DUE."""
    await make_invoice(db, organization_id, status=InvoiceStatus.OPEN, subscription_id=subscription_id,
                       created_at=datetime.now(UTC) - timedelta(days=2))
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.id == subscription_id).values(
            status=SubscriptionStatus.PAST_DUE, next_retry_at=datetime.now(UTC) + timedelta(days=2)))


async def submit(page, button: str | re.Pattern, expected: str) -> None:
    await page.get_by_role("button", name=button, exact=isinstance(button, str)).first.click()
    await page.get_by_text(expected).first.wait_for(timeout=30_000)


async def test_every_portal_page_and_action_at_desktop_and_phone_widths(served, keys, db, browser, axe_script,
                                                                        artifacts, backend):
    from sqlalchemy import select

    await make_payment_method(db, keys.organization_id, token="pm_card_visa", label="Company Visa")
    starter = await make_plan(db, name="Starter", monthly=299000, limits={"contacts": 1000, "agents": 5})
    growth = await make_plan(db, name="Growth", monthly=1663890, limits={"contacts": 10000, "agents": 20})
    await make_addon(db, name="Extra channel", monthly=90000)
    await make_coupon(db, code="HEMAT20", percent_off=20, now=datetime.now(UTC) - timedelta(days=1))
    graphql(served, keys.owner, SUBSCRIBE, {"i": {"planId": gid("Plan", starter.id)}})
    now = datetime.now(UTC).isoformat()
    graphql(served, keys.owner, RECORD, {"i": {"events": [
        {"metric": "contacts", "quantity": 870, "timestamp": now, "idempotencyKey": "contacts"},
        {"metric": "agents", "quantity": 4, "timestamp": now, "idempotencyKey": "agents"},
        {"metric": "messages", "quantity": 15230, "timestamp": now, "idempotencyKey": "messages"}]}})
    async with db.read() as session:
        subscription_id = await session.scalar(select(Subscription.id))

    for width, viewport in WIDTHS.items():
        context = await browser.new_context(viewport=viewport, bypass_csp=True,  # to inject axe only
                                            locale="en-US")
        page = await context.new_page()
        shots = Shots(page, artifacts, width, axe_script, backend)
        url = graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"]

        # Past due: the banner says what happened and what to do; "Pay now" pays with the default card.
        await open_invoice(db, keys.organization_id, subscription_id)
        await page.goto(url)
        await page.get_by_role("heading", name="Your last payment failed").wait_for(timeout=30_000)
        assert await page.get_by_role("progressbar").count() == 2  # contacts and agents against their limits
        await shots.take("overview-past-due")
        await submit(page, re.compile("^Pay now"), "Thank you: the invoice has been paid.")
        await shots.take("paid")

        # A new card: a declining one is refused with a sentence; a good one, made the default, pays
        # the open invoice at once.
        await open_invoice(db, keys.organization_id, subscription_id)
        await page.goto(url)
        await page.get_by_role("link", name="Use a new card").click()
        await page.get_by_label("Card token from the payment processor").fill("pm_card_declined")
        await submit(page, "Save the card", "Your card was declined. Nothing was saved; please use another card.")
        await shots.take("card-declined")
        await page.get_by_label("Card token from the payment processor").fill("pm_card_mastercard")
        await submit(page, "Save the card", "Your card has been saved and your open invoice has been paid.")
        await shots.take("cards")
        await page.get_by_role("button", name="Make default Visa •••• 4242").click()
        await page.get_by_text("This card is now your default card.").wait_for(timeout=30_000)
        await page.get_by_role("button", name="Remove Mastercard •••• 4444").click()
        await page.get_by_text("The card has been removed.").wait_for(timeout=30_000)

        # Plan and billing period: the preview, then the change it confirms.
        await page.get_by_role("link", name="Plan", exact=True).click()
        target = growth if width == "desktop" else starter
        await page.get_by_label("Plan", exact=True).select_option(str(target.id))
        await page.get_by_label("Yearly" if width == "desktop" else "Monthly").check()
        await submit(page, "Preview the change", "Due now")
        await shots.take("plan-preview")
        await submit(page, "Confirm", "Your plan has been changed.")

        # Add-ons: added, then removed, each after its prorated preview; a coupon.
        await page.goto(url.replace("?", "") + "/plan")
        await page.get_by_role("button", name="Add Extra channel").click()
        await page.get_by_text("Due now").wait_for(timeout=30_000)
        await submit(page, "Confirm", "Your add-ons have been updated.")
        await page.get_by_role("button", name="Remove Extra channel").click()
        await page.get_by_text("Account credit").wait_for(timeout=30_000)
        await shots.take("addon-preview")
        await submit(page, "Confirm", "Your add-ons have been updated.")
        await page.get_by_label("Coupon code").fill("hemat20")
        await submit(page, "Apply the coupon", "The coupon has been applied; it takes effect on your next invoice."
                     if width == "desktop" else "This coupon cannot be used on your subscription.")
        await shots.take("plan")

        # Billing details: an NPWP of the wrong length is refused with a sentence, then saved.
        await page.get_by_role("link", name="Billing details").click()
        await page.get_by_label("Legal name").fill("PT Acme Indonesia")
        await page.get_by_label("Address").fill("Jl. Jenderal Sudirman Kav. 52-53\nJakarta 12190")
        await page.get_by_label("Country").select_option("ID")
        await page.get_by_label("Tax number (NPWP in Indonesia)").fill("01.234.567")
        await submit(page, "Save the billing details", "An Indonesian tax number (NPWP) has 15 or 16 digits.")
        await page.get_by_label("Tax number (NPWP in Indonesia)").fill("01.234.567.8-901.234")
        await submit(page, "Save the billing details", "Your billing details have been saved.")
        await shots.take("details")

        # Invoices, with their PDFs.
        await page.get_by_role("link", name="Invoices").click()
        links = page.get_by_role("link", name=re.compile("^PDF of INV-"))
        assert await links.count() >= 3
        pdf = await page.request.get(served.url + await links.first.get_attribute("href"))
        assert pdf.status == 200 and (await pdf.body()).startswith(b"%PDF-")
        await shots.take("invoices")

        # Cancel with a reason and a confirmation step; then resume.
        await page.get_by_role("link", name="Overview").click()
        await page.get_by_role("link", name="Cancel the subscription").click()
        await shots.take("cancel")
        await page.get_by_label("Why are you canceling?").select_option("too_expensive")
        await page.get_by_label("Yes, cancel at the end of the period").check()
        await submit(page, "Cancel the subscription", "Your subscription will end at the end of the period.")
        await shots.take("canceled")
        await submit(page, "Resume the subscription", "Your subscription will renew as usual.")

        # Indonesian: a failed renewal again, paid from the banner.
        await open_invoice(db, keys.organization_id, subscription_id)
        await page.goto(url + "?lang=id")
        await page.get_by_role("heading", name="Penagihan untuk Acme").wait_for(timeout=30_000)
        assert "Pembayaran terakhir Anda gagal" in await page.content()
        assert re.search(r"Rp\s\d{1,3}(\.\d{3})+", await page.locator("main").inner_text())
        await shots.take("overview-id")
        await submit(page, re.compile("^Bayar sekarang"), "Terima kasih: tagihan telah dibayar.")
        await page.goto(url.replace("/portal/", "/portal/x") + "?lang=id")  # a link that is not valid
        await page.get_by_text("Tautan portal penagihan ini tidak berlaku.").wait_for(timeout=30_000)
        await shots.take("link-not-valid")
        assert set(shots.checked) >= {"overview-past-due", "cards", "plan-preview", "addon-preview", "plan",
                                      "details", "invoices", "cancel", "overview-id", "link-not-valid"}
        await context.close()
