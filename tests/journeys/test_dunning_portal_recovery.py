"""Journey 3: a renewal is declined, dunning retries it over one jump of the clock (each retry its
own payment attempt at its own instant), the owner sees it in the billing portal and saves a new
default card there (the HTML form over HTTP, with its CSRF token), which pays the open invoice at
once and recovers the subscription.

It opens with a declined first payment, which creates nothing. Basic: Rp 100,000 a month, no
trial. Dunning on the default days 1, 3, 5, 7.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.journeys.laws import amount
from tests.journeys.steps import PORTAL_SESSION, SUBSCRIBE, billed, card, figures, plan, subscription


CARDS = "{ paymentMethods { gatewayPaymentMethodId isDefault organization { id } } }"


def attempts(invoice: dict) -> list[tuple[str, str]]:
    return sorted((payment["createdAt"], payment["status"]) for payment in invoice["payments"])


async def test_declined_renewal_dunning_card_replaced_in_the_portal_then_recovery(ledger):
    await ledger.begin("2027-11-01T00:00:00Z")
    late = await ledger.tenant("Late Payer", "latepayer")
    basic = await plan(ledger, "basic", 100000, trialDays=0)
    await card(ledger, late, "pm_card_chargeDeclined")
    await ledger.check("catalog and a declining card", mrr=0, events={
        "organization.created": 1, "plan.created": 1, "payment_method.added": 1})

    # Nov 1: the first payment is declined: nothing is created, no event; the same key replays it.
    first_try = {"i": {"planId": basic, "idempotencyKey": "first-try"}}
    for _ in range(2):
        declined = (await ledger.gql(SUBSCRIBE, first_try, token=late.owner))["subscribe"]
        assert [error["code"] for error in declined["errors"]] == ["PAYMENT_FAILED"]
        assert declined["subscription"] is None and declined["invoice"] is None
    assert await subscription(ledger, late) is None and await ledger.invoices(late) == []
    await ledger.check("first payment declined", mrr=0, events={})

    # A new card and a new key: the subscription starts, paid.
    await card(ledger, late, "pm_card_visa", default=True)
    subscribed = await ledger.mutate(SUBSCRIBE, {"i": {"planId": basic, "idempotencyKey": "second-try"}},
                                     token=late.owner)
    assert subscribed["subscription"]["status"] == "ACTIVE" and figures(subscribed["invoice"]) == billed(100000)
    await ledger.check("subscribed", mrr=100000, events={
        "payment_method.added": 1, "subscription.created": 1, "invoice.created": 1, "invoice.paid": 1})

    # Nov 20: the card on file becomes one that declines.
    await ledger.at("2027-11-20T00:00:00Z")
    await card(ledger, late, "pm_card_chargeDeclinedInsufficientFunds", default=True)
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

    # Dec 5: the owner opens the billing portal: a banner says what happened and what to do. A new
    # card, saved as the default with the cards page's form, pays the open invoice at once (as Stripe
    # retries it when the card is replaced).
    await ledger.at("2027-12-05T09:00:00Z")
    session = await ledger.mutate(PORTAL_SESSION, {"i": {}}, token=late.owner)  # returnUrl: the default
    path = urlsplit(session["url"]).path
    page = await ledger.api.client.get(path)
    assert page.status_code == 200 and "Your last payment failed" in page.text and "Rp\xa0111,000" in page.text
    cards = await ledger.api.client.get(f"{path}/cards")
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', cards.text).group(1)
    replaced = await ledger.api.client.post(f"{path}/actions/add-card", data={
        "csrf": csrf, "token": "pm_card_mastercard", "label": "New card", "make_default": "yes"})
    assert replaced.status_code == 303 and replaced.headers["location"].endswith("/cards?notice=retried-paid")
    methods = (await ledger.gql(CARDS, token=late.owner))["paymentMethods"]
    assert [(m["gatewayPaymentMethodId"], m["isDefault"]) for m in methods if m["isDefault"]] == [
        ("pm_card_mastercard", True)]
    assert {m["organization"]["id"] for m in methods} == {late.id}
    renewal = (await ledger.invoices(late))[-1]
    assert renewal["status"] == "PAID" and figures(renewal) == billed(100000)
    assert attempts(renewal)[-1] == ("2027-12-05T09:00:00Z", "SUCCEEDED") and len(attempts(renewal)) == 4
    state = await subscription(ledger, late)
    assert state["status"] == "ACTIVE" and state["currentPeriodEnd"] == "2028-01-01T00:00:00Z"
    await ledger.check("card replaced in the portal: the open invoice paid at once", mrr=100000, events={
        "payment_method.added": 1, "invoice.paid": 1,
        "subscription.updated": 1})
    assert "Your last payment failed" not in (await ledger.api.client.get(path)).text

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
    ledger.check_event_shapes()
