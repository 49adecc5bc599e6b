"""The portal's cards page with each processor's own card form, in chromium, at desktop (1280 px)
and phone (390 px) widths, checked with axe-core (no serious or critical violation) and
photographed into the artefacts directory. The page's Content-Security-Policy is enforced (axe is
evaluated through the DevTools protocol, not injected as a script).

- Stripe: the served gateway talks to localstripe, and the page loads the Stripe.js localstripe
  serves (``BILLING_STRIPE_JS_URL=<localstripe>/js.stripe.com/v3/``). Its card element is
  localstripe's plain inputs standing in for Stripe's iframe; axe skips that element (``#card-element``,
  Stripe's own form), and checks the rest of the page. ``stripe.confirmCardSetup`` confirms the
  SetupIntent at localstripe from the browser; the server asks localstripe for it before saving.
- Razorpay: the served gateway talks to the stateful fake of Razorpay's API (served over HTTP
  here). Razorpay's checkout.js cannot be fetched without internet, so the test serves a small
  TEST DOUBLE of it (a Playwright route on ``https://checkout.razorpay.com/v1/checkout.js``): its
  ``open()`` asks the test for a payment, which the fake records as Checkout would (a captured
  payment on the order and the card tokenised), and calls the page's handler with the payment id and
  a signature the test computes with the fake's key secret (HMAC-SHA256 of ``order_id|payment_id``).
  Only the script is a double: the server's verification of that signature and its reading of the
  token from Razorpay's API are the real code.
- Without JavaScript, both pages say that adding a card needs JavaScript, and no token form is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web

from tests.browser.test_explorer_and_portal import PORTAL, graphql
from tests.gateways.contract.razorpay_fake import RazorpayFake
from tests.gateways.contract.servers import ThreadedServer, running_localstripe

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
RAZORPAY_KEY_ID, RAZORPAY_SECRET = "rzp_test_browser", "rzp-browser-test-secret"
CHECKOUT_JS = "https://checkout.razorpay.com/v1/checkout.js"
# The test double of Razorpay's checkout.js (see the module's docstring): the same constructor,
# ``on`` and ``open`` the page uses; ``open`` asks the test (a routed URL) for Checkout's answer.
CHECKOUT_DOUBLE = """
window.Razorpay = function (options) { this.options = options; this.events = {}; };
window.Razorpay.prototype.on = function (name, handler) { this.events[name] = handler; };
window.Razorpay.prototype.open = function () {
  var options = this.options, events = this.events;
  var query = ["key", "order_id", "customer_id", "recurring"].map(function (name) {
    return name + "=" + encodeURIComponent(options[name]); }).join("&");
  fetch("https://checkout.razorpay.com/test-double/pay?" + query).then(function (r) { return r.json(); })
    .then(function (answer) {
      if (answer.error) { events["payment.failed"]({error: answer.error}); } else { options.handler(answer); }
    });
};
"""

localstripe = pytest.fixture(scope="module", name="localstripe")(running_localstripe)


def serve_razorpay_fake(fake: RazorpayFake) -> ThreadedServer:
    """The Razorpay fake (an httpx transport) over HTTP, for the gateway served in a subprocess."""
    async def handle(request: web.Request) -> web.Response:
        answer = fake.handle(httpx.Request(request.method, str(request.url), headers=dict(request.headers),
                                           content=await request.read()))
        return web.Response(status=answer.status_code, body=answer.content, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return ThreadedServer(app).start()


@pytest.fixture
def razorpay_fake() -> RazorpayFake:
    return RazorpayFake()


@pytest.fixture
def served_env(request, razorpay_fake):
    """Stripe's keys and localstripe, or Razorpay's keys and the fake, for the served gateway."""
    if "razorpay" in request.node.name:
        server = serve_razorpay_fake(razorpay_fake)
        request.addfinalizer(server.stop)
        return {"BILLING_RAZORPAY_KEY_ID": RAZORPAY_KEY_ID, "BILLING_RAZORPAY_KEY_SECRET": RAZORPAY_SECRET,
                "BILLING_RAZORPAY_BASE_URL": server.url}
    stripe = request.getfixturevalue("localstripe")
    return {"BILLING_STRIPE_SECRET_KEY": "sk_test_browser", "BILLING_STRIPE_PUBLISHABLE_KEY": "pk_test_browser",
            "BILLING_STRIPE_API_BASE": stripe.url, "BILLING_STRIPE_JS_URL": f"{stripe.url}/js.stripe.com/v3/"}


class Shots:
    """Screenshots and axe checks, numbered in the order taken."""

    def __init__(self, page, directory: Path, name: str, axe_script: Path) -> None:
        self.page, self.directory, self.name, self.axe = page, directory, name, axe_script.read_text()
        self.count = 0
        self.checked: list[str] = []

    async def take(self, name: str, *, exclude: tuple[str, ...] = ()) -> None:
        self.count += 1
        await self.page.wait_for_load_state("load")
        path = self.directory / f"portal-{self.name}-{self.count:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        await self.page.evaluate(self.axe)  # evaluated over CDP: the page's CSP stays enforced
        result = await self.page.evaluate(
            "async (exclude) => (await axe.run({exclude: exclude.map(s => [s])}, {resultTypes: ['violations']}))"
            ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html)"
            ".slice(0, 3)}))", list(exclude))
        bad = [violation for violation in result if violation["impact"] in ("serious", "critical")]
        assert bad == [], f"{self.name} {name}: {json.dumps(bad, indent=1)}"
        self.checked.append(name)


async def fill_localstripe_card(page, number: str) -> None:
    """localstripe's card element: plain inputs named by their placeholders."""
    element = page.locator("#card-element")
    await element.get_by_placeholder("number").fill(number)
    await element.get_by_placeholder("exp_month").fill("12")
    await element.get_by_placeholder("exp_year").fill("30")
    await element.get_by_placeholder("cvc").fill("123")
    await element.get_by_placeholder("postal_code").fill("12190")


async def test_stripe_elements_with_a_setup_intent_at_desktop_and_phone_widths(served, keys, browser, axe_script,
                                                                               artifacts, backend):
    errors: list[str] = []
    for width, viewport in WIDTHS.items():
        context = await browser.new_context(viewport=viewport, locale="en-US")
        page = await context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        shots = Shots(page, artifacts, f"stripe-{backend}-{width}", axe_script)
        url = graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"]
        lang = "?lang=id" if width == "phone" else ""
        await page.goto(url.split("?")[0] + "/cards" + lang)
        await page.locator("#card-element").get_by_placeholder("number").wait_for(timeout=30_000)
        assert await page.get_by_label("Card token from the payment processor").count() == 0
        assert not await page.get_by_text("Adding a card needs JavaScript").is_visible()
        await shots.take("form", exclude=("#card-element",))

        # A card Stripe declines when the SetupIntent is confirmed: refused with a sentence, nothing saved.
        await fill_localstripe_card(page, "4000000000000002")
        await page.get_by_role("button", name="Simpan kartu" if lang else "Save the card").click()
        refused = ("Kartu Anda tidak diterima: Your card was declined. Tidak ada yang disimpan; silakan gunakan kartu "
                   "lain." if lang else
                   "Your card was not accepted: Your card was declined. Nothing was saved; please use another card.")
        await page.get_by_role("alert").filter(has_text=refused).wait_for(timeout=30_000)
        await shots.take("declined", exclude=("#card-element",))

        # A good card: confirmed in the browser, then saved by the server from Stripe's SetupIntent.
        await page.reload()
        await fill_localstripe_card(page, "4242424242424242")
        await page.get_by_role("button", name="Simpan kartu" if lang else "Save the card").click()
        await page.get_by_text("Kartu Anda telah disimpan." if lang else "Your card has been saved.").wait_for(
            timeout=30_000)
        assert "Visa •••• 4242" in await page.locator("main table").inner_text()
        await shots.take("saved", exclude=("#card-element",))
        await context.close()
    assert [error for error in errors if "Content Security Policy" in error] == []


async def test_without_javascript_the_processors_card_form_says_it_needs_it(served, keys, browser, artifacts,
                                                                            backend):
    context = await browser.new_context(viewport=WIDTHS["desktop"], java_script_enabled=False, locale="en-US")
    page = await context.new_page()
    url = graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"]
    await page.goto(url.split("?")[0] + "/cards")
    await page.get_by_text("Adding a card needs JavaScript").wait_for(timeout=30_000)
    assert await page.get_by_role("button", name="Save the card").count() == 0  # the form stays hidden
    assert await page.get_by_label("Card token from the payment processor").count() == 0
    await page.screenshot(path=str(artifacts / f"portal-stripe-{backend}-no-javascript.png"), full_page=True)
    await context.close()


async def test_razorpay_checkout_with_a_test_double_of_its_script_at_desktop_and_phone_widths(
        served, keys, browser, axe_script, artifacts, backend, razorpay_fake):
    asked: list[dict[str, str]] = []
    decline = {"next": False}

    async def checkout_script(route) -> None:
        await route.fulfill(status=200, content_type="application/javascript", body=CHECKOUT_DOUBLE)

    async def checkout_answer(route) -> None:
        """What Razorpay Checkout hands the page's handler: the payment and its signature."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(route.request.url).query).items()}
        asked.append(query)
        if decline["next"]:
            decline["next"] = False
            answer = {"error": {"code": "BAD_REQUEST_ERROR", "description": "Payment failed"}}
        else:
            payment_id = razorpay_fake.pay_in_checkout(query["order_id"], network="Visa", last4="1111")
            signature = hmac.new(RAZORPAY_SECRET.encode(), f"{query['order_id']}|{payment_id}".encode(),
                                 hashlib.sha256).hexdigest()
            answer = {"razorpay_payment_id": payment_id, "razorpay_order_id": query["order_id"],
                      "razorpay_signature": signature}
        await route.fulfill(status=200, content_type="application/json", body=json.dumps(answer),
                            headers={"Access-Control-Allow-Origin": "*"})

    for width, viewport in WIDTHS.items():
        context = await browser.new_context(viewport=viewport, locale="en-US")
        await context.route(CHECKOUT_JS, checkout_script)
        await context.route("https://checkout.razorpay.com/test-double/pay**", checkout_answer)
        page = await context.new_page()
        shots = Shots(page, artifacts, f"razorpay-{backend}-{width}", axe_script)
        url = graphql(served, keys.owner, PORTAL)["createBillingPortalSession"]["url"]
        await page.goto(url.split("?")[0] + "/cards")
        await page.get_by_role("button", name="Save the card").wait_for(timeout=30_000)
        assert await page.get_by_label("Card token from the payment processor").count() == 0
        await shots.take("form")

        # Checkout reports the payment failed: a sentence, nothing saved.
        decline["next"] = True
        await page.get_by_role("button", name="Save the card").click()
        await page.get_by_role("alert").filter(has_text="Your card was not accepted: Payment failed. Nothing was saved").wait_for(
            timeout=30_000)
        await shots.take("declined")

        # Checkout authorises the card: the server verifies the signature and saves Razorpay's token.
        await page.get_by_role("button", name="Save the card").click()
        await page.get_by_text("Your card has been saved.").wait_for(timeout=30_000)
        assert "Visa •••• 1111" in await page.locator("main table").inner_text()
        await shots.take("saved")
        await context.close()
    assert {(query["key"], query["recurring"]) for query in asked} == {(RAZORPAY_KEY_ID, "1")}
    assert all(razorpay_fake.orders[query["order_id"]]["token"] == {"frequency": "as_presented"} for query in asked)
    assert len(razorpay_fake.tokens) == 2  # one card saved at each width
