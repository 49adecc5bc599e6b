"""In chromium: the portal's usage bars move without a reload after a recordUsage over HTTP (the page's own
script, under the portal's Content-Security-Policy), and the page stays free of serious or critical axe
violations once they moved. Without JavaScript the page is as rendered (tests/browser/test_portal_pages)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx

from tests.browser.test_explorer_and_portal import PORTAL, SUBSCRIBE, graphql
from tests.factories import make_payment_method, make_plan
from tests.helpers import gid

RECORD = """mutation($i: RecordUsageInput!) { recordUsage(input: $i) { accepted errors { code } } }"""
CONTACTS = '[data-metric="contacts"]'


async def record(served, token: str, quantity: int, key: str) -> None:
    """contacts is a GAUGE: the quantity is its new value."""
    event = {"metric": "contacts", "quantity": quantity, "timestamp": datetime.now(UTC).isoformat(),
             "idempotencyKey": key}
    answer = await asyncio.to_thread(graphql, served, token, RECORD, {"i": {"events": [event]}})
    assert answer["recordUsage"] == {"accepted": 1, "errors": []}


async def bar_state(page) -> dict:
    return await page.evaluate("""() => {
        const bar = document.querySelector('[data-metric="contacts"]');
        const meter = bar.querySelector('[role="progressbar"]');
        return {text: bar.querySelector('p').innerText, now: meter.getAttribute('aria-valuenow'),
                width: meter.querySelector('span').style.width, over: meter.classList.contains('over')};
    }""")


async def test_the_usage_bars_move_without_a_reload(served, keys, db, browser, axe_script):
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    plan = await make_plan(db, name="Starter", monthly=299000, limits={"contacts": 1000, "agents": 5})
    graphql(served, keys.owner, SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}})
    await record(served, keys.owner, 870, "c-1")

    # the portal's own Content-Security-Policy in force: its script and its socket are allowed
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    loads: list[str] = []
    page.on("load", lambda _: loads.append("load"))
    await page.goto(graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"])
    assert await bar_state(page) == {"text": "Contacts: 870 of 1,000", "now": "87", "width": "87%", "over": False}
    await page.locator('[data-live-state="subscribed"]').wait_for(timeout=30_000)
    await asyncio.sleep(0.5)  # the subscription is registered with the hub
    await record(served, keys.owner, 970, "c-2")
    await page.wait_for_function("""() => document.querySelector('[data-metric="contacts"] [role="progressbar"]')
        .getAttribute('aria-valuenow') === '97'""", timeout=30_000)
    assert await bar_state(page) == {"text": "Contacts: 970 of 1,000", "now": "97", "width": "97%", "over": False}
    await asyncio.sleep(1.1)  # usageUpdated: at most one message per metric per second
    await record(served, keys.owner, 1050, "c-3")
    await page.wait_for_function("""() => document.querySelector('[data-metric="contacts"] [role="progressbar"]')
        .classList.contains('over')""", timeout=30_000)
    assert await bar_state(page) == {"text": "Contacts: 1,050 of 1,000 — over the limit", "now": "100",
                                     "width": "100%", "over": True}
    assert loads == ["load"] and refused == [], (loads, refused)
    await context.close()

    # axe over the page as the script left it (CSP bypassed only to inject axe)
    context = await browser.new_context(locale="en-US", bypass_csp=True)
    page = await context.new_page()
    await page.goto(graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"])
    await page.locator('[data-live-state="subscribed"]').wait_for(timeout=30_000)
    await asyncio.sleep(0.5)
    await record(served, keys.owner, 1055, "c-4")
    await page.get_by_text("1,055 of 1,000").wait_for(timeout=30_000)
    await page.add_script_tag(path=str(axe_script))
    violations = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}))")
    bad = [violation for violation in violations if violation["impact"] in ("serious", "critical")]
    assert bad == [], json.dumps(bad, indent=1)
    await context.close()
