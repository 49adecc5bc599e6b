"""The journeys with Stripe as the processor (issue 22): the cards are Stripe PaymentMethods
attached to the organization's Stripe Customer, every charge is a PaymentIntent at localstripe
(the contract suite's fake Stripe, started on loopback for this module), and the laws are
checked after each step exactly as for the sandbox.

- Journey 3 with Stripe: a declined first payment, a declined renewal, dunning, the card replaced
  in the billing portal (a PaymentMethod the SPA's Stripe.js made, handed to the portal's form),
  recovery, and the next renewal on the new card.
- Subscribe, renewal charged, refund: a card saved with Stripe, the subscription paid, the
  renewal charged by the billing run, a partial refund at Stripe.
- No card number stored or logged: after journey 3 with Stripe, every text column of every table
  and every log record at DEBUG is scanned.

Journeys 1, 2, 4, 5, 6 and 7 run with Stripe from their own modules (parametrized by ``processor``,
see conftest.py).

localstripe's canned cards: ``pm_card_visa`` pays; ``pm_card_chargeCustomerFail`` attaches and
declines every charge. Other cards are made at localstripe as Stripe.js makes them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from urllib.parse import unquote_plus, urlsplit

import pytest
from sqlalchemy import JSON, String, select

from billing_graphql.db.models import Base
from billing_graphql.domain.cards import contains_card_number

from tests.journeys.laws import ERRORS, MONEY, Ledger, Tenant, amount
from tests.journeys.steps import (PORTAL_SESSION, SUBSCRIBE, billed, card_by_stripe_js, figures, plan, stripe_client,
                                  subscription)

pytestmark = pytest.mark.parametrize("processor", ["stripe"], indirect=True)

ADD_STRIPE_CARD = f"""mutation($i: AddPaymentMethodInput!) {{ addPaymentMethod(input: $i) {{
  paymentMethod {{ id gateway gatewayPaymentMethodId brand last4 isDefault }} {ERRORS} }} }}"""
CARDS = "{ paymentMethods { gateway gatewayPaymentMethodId brand last4 isDefault organization { id } } }"
CUSTOMER = "query($org: ID) { subscription(organizationId: $org) { gatewayCustomerId } }"
REFUND = f"""mutation($i: RefundInput!) {{ refund(input: $i) {{ status refundAmount {MONEY} invoiceStatus
  {ERRORS} }} }}"""


async def stripe_card(ledger: Ledger, tenant: Tenant, token: str, *, default: bool = True) -> dict:
    added = await ledger.mutate(ADD_STRIPE_CARD, {"i": {"gateway": "stripe", "gatewayPaymentMethodId": token,
                                                        "type": "CREDIT_CARD", "isDefault": default}},
                                token=tenant.owner)
    method = added["paymentMethod"]
    assert method["gateway"] == "stripe" and method["gatewayPaymentMethodId"].startswith("pm_")
    return method


async def customer_of(ledger: Ledger, tenant: Tenant) -> str:
    customer = (await ledger.gql(CUSTOMER, {"org": tenant.id}))["subscription"]["gatewayCustomerId"]
    assert customer.startswith("cus_"), customer
    return customer


async def intents_of(localstripe, customer: str) -> list[dict]:
    """The customer's PaymentIntents at Stripe, oldest first (localstripe lists in the order made
    and filters by nothing)."""
    intents = await stripe_client(localstripe).v1.payment_intents.list_async({"limit": 100})
    assert not intents.has_more
    return [intent.to_dict() for intent in intents.data if intent.customer == customer]


def attempts(invoice: dict) -> list[tuple[str, str]]:
    return sorted((payment["createdAt"], payment["status"]) for payment in invoice["payments"])


async def test_stripe_declined_renewal_dunning_card_replaced_in_the_portal_then_recovery(ledger, localstripe):
    await ledger.begin("2027-11-01T00:00:00Z")
    late = await ledger.tenant("Late Payer", "latepayer")
    basic = await plan(ledger, "basic", 100000, trialDays=0)
    await stripe_card(ledger, late, "pm_card_chargeCustomerFail")
    await ledger.check("catalog and a declining Stripe card", mrr=0, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1})

    # Nov 1: the first payment is declined by Stripe: nothing is created; the same key replays it.
    first_try = {"i": {"planId": basic, "idempotencyKey": "first-try"}}
    for _ in range(2):
        declined = (await ledger.gql(SUBSCRIBE, first_try, token=late.owner))["subscribe"]
        assert [error["code"] for error in declined["errors"]] == ["PAYMENT_FAILED"], declined["errors"]
        assert "decline code" in declined["errors"][0]["message"]
        assert declined["subscription"] is None and declined["invoice"] is None
    assert await subscription(ledger, late) is None and await ledger.invoices(late) == []
    await ledger.check("first payment declined", mrr=0, events={})

    # A Visa and a new key: the subscription starts, paid at Stripe.
    await stripe_card(ledger, late, "pm_card_visa", default=True)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": basic, "idempotencyKey": "second-try"}},
                                     token=late.owner)
    assert subscribed["subscription"]["status"] == "ACTIVE" and figures(subscribed["invoice"]) == billed(100000)
    customer = await customer_of(ledger, late)
    assert [(i["status"], i["amount"]) for i in await intents_of(localstripe, customer)][-1] == (
        "succeeded", 111000 * 100)  # IDR in Stripe's hundredths
    await ledger.check("subscribed", mrr=100000, events={
        "payment_method.added": 1, "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Nov 20: the default card becomes one that Stripe declines.
    await ledger.at("2027-11-20T00:00:00Z")
    await stripe_card(ledger, late, "pm_card_chargeCustomerFail", default=True)
    await ledger.check("a declining default card", mrr=100000, events={"payment_method.added": 1})

    # One jump to Dec 4 noon: the renewal (Dec 1) and the retries of day 1 (Dec 2) and day 3 (Dec 4).
    await ledger.at("2027-12-04T12:00:00Z")
    renewal = (await ledger.invoices(late))[-1]
    assert renewal["status"] == "OPEN" and figures(renewal) == billed(100000, paid=False)
    assert attempts(renewal) == [("2027-12-01T00:00:00Z", "FAILED"), ("2027-12-02T00:00:00Z", "FAILED"),
                                 ("2027-12-04T00:00:00Z", "FAILED")]
    state = await subscription(ledger, late)
    assert (state["status"], state["retryCount"], renewal["retryCount"]) == ("PAST_DUE", 2, 2)
    await ledger.check("declined renewal and two retries", mrr=100000, events={
        "invoice.created": 1, "invoice.payment_failed": 3, "subscription.updated": 1})

    # Dec 5: the owner replaces the card in the billing portal with a Mastercard Stripe.js made.
    await ledger.at("2027-12-05T09:00:00Z")
    mastercard = await card_by_stripe_js(localstripe, "5555555555554444")
    session = await ledger.mutate(PORTAL_SESSION, {"i": {}}, token=late.owner)
    path = urlsplit(session["url"]).path
    page = await ledger.api.client.get(path)
    assert page.status_code == 200 and "Your last payment failed" in page.text
    cards = await ledger.api.client.get(f"{path}/cards")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', cards.text).group(1)
    # Replacing the card retries the open invoice at once, at Stripe (as Stripe does).
    replaced = await ledger.api.client.post(f"{path}/actions/replace-card",
                                            data={"csrf": csrf, "token": mastercard, "label": "New card"})
    assert replaced.status_code == 303 and replaced.headers["location"].endswith("?notice=retried-paid"), (
        replaced.status_code, replaced.headers.get("location"), replaced.text[:500])
    methods = (await ledger.gql(CARDS, token=late.owner))["paymentMethods"]
    assert [(m["gateway"], m["gatewayPaymentMethodId"], m["last4"]) for m in methods if m["isDefault"]] == [
        ("stripe", mastercard, "4444")], methods  # Stripe's details of the card (localstripe calls all "visa")
    attached = await stripe_client(localstripe).v1.payment_methods.retrieve_async(mastercard)
    assert attached.customer == customer, "the new card is attached to the organization's Stripe Customer"
    renewal = (await ledger.invoices(late))[-1]
    assert renewal["status"] == "PAID" and figures(renewal) == billed(100000)
    assert attempts(renewal)[-1] == ("2027-12-05T09:00:00Z", "SUCCEEDED") and len(attempts(renewal)) == 4
    last = (await intents_of(localstripe, customer))[-1]
    assert (last["status"], last["payment_method"]) == ("succeeded", mastercard)
    state = await subscription(ledger, late)
    assert state["status"] == "ACTIVE" and state["currentPeriodEnd"] == "2028-01-01T00:00:00Z"
    await ledger.check("card replaced in the portal: the open invoice paid at once", mrr=100000, events={
        "payment_method.added": 1, "payment_method.removed": 1, "invoice.paid": 1, "subscription.updated": 1})

    # Dec 6: no retry is left to make.
    await ledger.at("2027-12-06T12:00:00Z")
    assert len(attempts((await ledger.invoices(late))[-1])) == 4
    await ledger.check("nothing left to retry", mrr=100000, events={})

    # Jan 1: the next renewal goes through on the new card at once.
    await ledger.at("2028-01-01T00:00:00Z")
    january = (await ledger.invoices(late))[-1]
    assert january["status"] == "PAID" and figures(january) == billed(100000)
    report = await ledger.check("renewed on the new card", mrr=100000,
                                events={"invoice.created": 1, "invoice.paid": 1})
    assert {month["month"]: amount(month["netRevenue"]) for month in report["months"]} == {
        "2027-10": 0, "2027-11": 111000, "2027-12": 111000, "2028-01": 111000}
    succeeded = [i for i in await intents_of(localstripe, customer) if i["status"] == "succeeded"]
    assert [i["amount"] for i in succeeded] == [11100000] * 3  # Nov, Dec (recovered), Jan
    ledger.check_event_shapes()


async def test_stripe_subscribe_renewal_charged_then_refunded(ledger, localstripe):
    """Pro: Rp 250,000 a month, no trial. Subscribed Feb 1 2027 (a 28-day period), renewed Mar 1,
    and Rp 50,000 of the March renewal refunded at Stripe on Mar 3."""
    await ledger.begin("2027-02-01T00:00:00Z")
    shop = await ledger.tenant("Stripe Shop", "stripeshop")
    pro = await plan(ledger, "pro", 250000, trialDays=0)
    saved = await stripe_card(ledger, shop, await card_by_stripe_js(localstripe, "4242424242424242"))
    assert (saved["brand"], saved["last4"], saved["isDefault"]) == ("visa", "4242", True)
    await ledger.check("catalog and a card saved with Stripe.js", mrr=0, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1})

    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": pro, "idempotencyKey": "pro-1"}}, token=shop.owner)
    assert subscribed["subscription"]["status"] == "ACTIVE" and figures(subscribed["invoice"]) == billed(250000)
    customer = await customer_of(ledger, shop)
    await ledger.check("subscribed", mrr=250000, events={
        "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Mar 1: the billing run charges the renewal at Stripe.
    await ledger.at("2027-03-01T00:00:00Z")
    march = (await ledger.invoices(shop))[-1]
    assert march["status"] == "PAID" and figures(march) == billed(250000) and march["billingReason"] == \
        "SUBSCRIPTION_CYCLE"
    assert [(i["status"], i["amount"]) for i in await intents_of(localstripe, customer)] == [
        ("succeeded", 277500 * 100), ("succeeded", 277500 * 100)]
    await ledger.check("renewal charged", mrr=250000, events={"invoice.created": 1, "invoice.paid": 1})

    # Mar 3: Rp 50,000 of it refunded, a Stripe Refund for the renewal's PaymentIntent.
    await ledger.at("2027-03-03T00:00:00Z")
    refunded = await ledger.mutate(REFUND, {"i": {"invoiceId": march["id"], "amount": "50000",
                                                  "reason": "goodwill", "idempotencyKey": "refund-1"}})
    assert (refunded["status"], refunded["refundAmount"], refunded["invoiceStatus"]) == (
        "SUCCEEDED", {"amount": "50000", "currency": "IDR"}, "PARTIALLY_REFUNDED")
    renewal_intent = (await intents_of(localstripe, customer))[-1]["id"]
    refunds = await stripe_client(localstripe).v1.refunds.list_async({"payment_intent": renewal_intent})
    assert [refund.amount for refund in refunds.data] == [50000 * 100]
    again = await ledger.mutate(REFUND, {"i": {"invoiceId": march["id"], "amount": "50000", "reason": "goodwill",
                                               "idempotencyKey": "refund-1"}})
    assert again["status"] == "SUCCEEDED"
    refunds = await stripe_client(localstripe).v1.refunds.list_async({"payment_intent": renewal_intent})
    assert len(refunds.data) == 1, "the same key refunds once"
    march = (await ledger.invoices(shop))[-1]
    assert amount(march["amountRefunded"]) == 50000 and march["status"] == "PARTIALLY_REFUNDED"
    await ledger.check("refunded in part", mrr=250000, events={"refund.created": 1})
    ledger.check_event_shapes()


# Stored and logged text holds digit runs of three shapes that the card check (made for free text
# a caller sends) reads as card numbers now and then: ISO-8601 times, hexadecimal digests and keys
# (32+ digits), and Relay global ids (base64 of "Type:uuid"). They are blanked before the check; a
# card number has none of these shapes (the test checks that it is still found after blanking).
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
HEX_DIGEST = re.compile(r"[0-9a-fA-F]{32,}")
BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _global_id(match: re.Match[str]) -> str:
    try:
        decoded = base64.b64decode(match.group(0), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return match.group(0)
    return " " if re.fullmatch(r"[A-Za-z]+:[0-9a-f-]{36}", decoded) else match.group(0)


def holds_card_number(text: str | None) -> bool:
    if not text:
        return False
    return contains_card_number(BASE64.sub(_global_id, HEX_DIGEST.sub(" ", ISO_TIME.sub(" ", text))))


async def stored_text(db) -> list[tuple[str, str]]:
    """Every value of every text column (strings, and JSON as its text) of every table, with its
    ``table.column``."""
    found = []
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if isinstance(column.type, (String, JSON))]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        text = value if isinstance(value, str) else json.dumps(value, default=str)
                        found.append((f"{table.name}.{column.name}", text))
    return found


async def test_no_card_number_is_stored_or_logged_on_the_stripe_paths(ledger, localstripe, caplog):
    """After journey 3 with Stripe (declines, dunning, a card made with Stripe.js from
    5555555555554444 and handed to the portal, recovery, renewals), no text column of any table
    and no log record at DEBUG holds anything that looks like a card number."""
    caplog.set_level(logging.DEBUG)
    await test_stripe_declined_renewal_dunning_card_replaced_in_the_portal_then_recovery(ledger, localstripe)

    stored = await stored_text(ledger.db)
    columns = {column for column, _ in stored}
    assert {"payment_methods.gateway_payment_method_id", "payment_methods.last4", "outbox_events.payload",
            "audit_events.after"} <= columns, sorted(columns)  # the scan read the tables that matter
    assert holds_card_number("pm_1 4242424242424242 2027-12-01T00:00:00Z") and holds_card_number(
        "5555-5555-5555-4444 U3Vic2NyaXB0aW9u")  # blanking the other shapes leaves a card visible
    assert [column for column, text in stored if holds_card_number(text)] == []

    records = caplog.records
    assert any(record.name.startswith("stripe") for record in records), "the gateway's Stripe calls are logged"
    # aiosqlite echoes each statement's parameters at DEBUG (runs like "0, 0, 0, ..." that read as
    # digits): what it echoes is what is written, which the scan of the tables above covers.
    # The stripe library's request bodies are form-encoded: read them decoded.
    logged = [(record.name, record.levelname) for record in records if record.name != "aiosqlite"
              and (holds_card_number(unquote_plus(record.getMessage())) or holds_card_number(record.exc_text))]
    assert logged == []
