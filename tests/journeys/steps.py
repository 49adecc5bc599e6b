"""The operations a customer (and the staff) perform in the journeys, as GraphQL documents, and
the hand-worked billing arithmetic of DESIGN section 3 (IDR: whole rupiah, PPN 12% on 11/12 of
the base, ROUND_HALF_UP once per line and once for tax)."""

from __future__ import annotations

import json
import logging
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import stripe

from tests.journeys.laws import ERRORS, INVOICE, MONEY, Ledger, Tenant, amount

SUBSCRIPTION_FIELDS = f"""id status isTrial trialEndsAt billingPeriod cancelAtPeriodEnd currentPeriodStart
  currentPeriodEnd agentCount retryCount plan {{ slug }}
  pendingChange {{ plan {{ slug }} billingPeriod effectiveAt }}
  coupon {{ code periodsRemaining }} addons {{ slug quantity amount {MONEY} }}"""
CREATE_PLAN = f"""mutation($i: CreatePlanInput!) {{ createPlan(input: $i) {{ plan {{ id slug }} {ERRORS} }} }}"""
CREATE_ADDON = f"""mutation($i: CreateAddonInput!) {{ createAddon(input: $i) {{ addon {{ id slug }} {ERRORS} }} }}"""
CREATE_COUPON = f"""mutation($i: CreateCouponInput!) {{ createCoupon(input: $i) {{ coupon {{ id code }} {ERRORS} }} }}"""
ADD_CARD = f"""mutation($i: AddPaymentMethodInput!) {{ addPaymentMethod(input: $i) {{
  paymentMethod {{ id gateway isDefault }} {ERRORS} }} }}"""
PAYMENT_METHODS = "{ paymentMethods { id gateway gatewayPaymentMethodId isDefault } }"
SUBSCRIBE = f"""mutation($i: SubscribeInput!) {{ subscribe(input: $i) {{
  subscription {{ {SUBSCRIPTION_FIELDS} }} invoice {{ {INVOICE} }} {ERRORS} }} }}"""
CHANGE_PLAN = f"""mutation($i: ChangePlanInput!) {{ changePlan(input: $i) {{
  subscription {{ {SUBSCRIPTION_FIELDS} }} invoice {{ {INVOICE} }} creditAdded {MONEY} {ERRORS} }} }}"""
CANCEL = f"""mutation($i: CancelInput!) {{ cancel(input: $i) {{ subscription {{ {SUBSCRIPTION_FIELDS} endedAt }}
  {ERRORS} }} }}"""
RESUME = f"""mutation {{ resume {{ subscription {{ {SUBSCRIPTION_FIELDS} }} {ERRORS} }} }}"""
ATTACH = f"""mutation($i: AttachAddonInput!) {{ attachAddon(input: $i) {{
  subscription {{ {SUBSCRIPTION_FIELDS} }} invoice {{ {INVOICE} }} {ERRORS} }} }}"""
RECORD = f"""mutation($i: RecordUsageInput!) {{ recordUsage(input: $i) {{ accepted duplicates
  errors {{ code field message }} }} }}"""
START_CHECKOUT = f"""mutation($i: StartCheckoutInput!) {{ startCheckout(input: $i) {{
  gateway orderId amount {MONEY} invoice {{ {INVOICE} }} {ERRORS} }} }}"""
CONFIRM_CHECKOUT = f"""mutation($i: ConfirmCheckoutInput!) {{ confirmCheckout(input: $i) {{
  subscription {{ {SUBSCRIPTION_FIELDS} }} invoice {{ {INVOICE} }} payment {{ status amount {MONEY} }} {ERRORS} }} }}"""
PORTAL_SESSION = f"""mutation($i: CreateBillingPortalSessionInput!) {{ createBillingPortalSession(input: $i) {{
  url {ERRORS} }} }}"""
SUBSCRIPTION = f"query {{ subscription {{ {SUBSCRIPTION_FIELDS} }} }}"


def tax(base: int) -> int:
    """PPN: 12% of 11/12 of the base, half up."""
    return int((Decimal(base) * Decimal(11) / Decimal(12) * Decimal("0.12")).quantize(Decimal(1), ROUND_HALF_UP))


def prorate(price: int, remaining: Fraction) -> int:
    """A recurring price times the remaining fraction of the period, half up."""
    return int((Decimal(price) * remaining.numerator / remaining.denominator).quantize(Decimal(1), ROUND_HALF_UP))


def figures(invoice: dict) -> dict[str, int]:
    """An invoice's money, in rupiah."""
    keys = ("subtotal", "discount", "tax", "total", "creditApplied", "amountPaid", "amountDue")
    return {key: int(amount(invoice[key])) for key in keys}


def billed(subtotal: int, *, discount: int = 0, credit: int = 0, paid: bool = True) -> dict[str, int]:
    """What an invoice of ``subtotal`` (before its discount) must show, worked by hand."""
    tax_ = tax(subtotal - discount)
    total = subtotal - discount + tax_
    paid_amount = total - credit if paid else 0
    return {"subtotal": subtotal, "discount": discount, "tax": tax_, "total": total, "creditApplied": credit,
            "amountPaid": paid_amount, "amountDue": total - credit - paid_amount}


def lines(invoice: dict) -> list[tuple[str, str, int]]:
    return [(line["kind"], line["quantity"], int(amount(line["amount"]))) for line in invoice["lines"]]


async def plan(ledger: Ledger, slug: str, monthly: int, **extra) -> str:
    values = {"name": slug.title(), "slug": slug, "basePriceMonthly": str(monthly), **extra}
    return (await ledger.mutate(CREATE_PLAN, {"i": values}))["plan"]["id"]


async def card(ledger: Ledger, tenant: Tenant, token: str = "pm_card_visa", *, default: bool = True) -> str:
    """A paying card, saved with the ledger's processor (``pm_card_visa`` is a card that pays at
    the sandbox and at localstripe alike)."""
    added = await ledger.mutate(ADD_CARD, {"i": {"gateway": ledger.processor, "gatewayPaymentMethodId": token,
                                                 "type": "CREDIT_CARD", "label": token, "isDefault": default}},
                                token=tenant.owner)
    method = added["paymentMethod"]
    assert method["gateway"] == ledger.processor, method
    return method["id"]


async def record(ledger: Ledger, tenant: Tenant, metric: str, quantity: int, key: str) -> None:
    assert ledger.now is not None
    done = (await ledger.gql(RECORD, {"i": {"events": [{"metric": metric, "quantity": quantity,
                                                         "timestamp": ledger.now.isoformat(),
                                                         "idempotencyKey": key}]}}, token=tenant.owner))
    assert done["recordUsage"]["errors"] == [] and done["recordUsage"]["accepted"] == 1, done


async def subscription(ledger: Ledger, tenant: Tenant) -> dict:
    return (await ledger.gql(SUBSCRIPTION, token=tenant.owner))["subscription"]


# -- what the SPA's Stripe.js does at Stripe (localstripe), for the Stripe journeys ----------------

def stripe_client(localstripe) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_journeys", base_addresses={"api": localstripe.url}, max_network_retries=0,
                               http_client=stripe.HTTPXClient())


async def card_by_stripe_js(localstripe, number: str) -> str:
    """A PaymentMethod made at Stripe from the card the customer typed into Stripe.js (the card
    never reaches the gateway): its ``pm_...`` id, all the SPA hands over."""
    # This stands in for the customer's browser: the stripe library logs its request bodies at
    # DEBUG, which the gateway's own logs must never hold (test_stripe_journeys' card-number test).
    library = logging.getLogger("stripe")
    level = library.level
    library.setLevel(logging.INFO)
    try:
        method = await stripe_client(localstripe).v1.payment_methods.create_async(
            {"type": "card", "card": {"number": number, "exp_month": 8, "exp_year": 2031, "cvc": "123"}})
    finally:
        library.setLevel(level)
    return method.id


async def pay_checkout_with_stripe_js(ledger: Ledger, localstripe, order_id: str, webhook_secret: str) -> None:
    """The customer pays a Stripe checkout: Stripe.js confirms the PaymentIntent with the card
    typed in (``stripe.confirmCardPayment``), Stripe keeps the card on the Customer (what
    ``setup_future_usage=off_session`` does; localstripe lacks it, so it is attached here) and
    sends ``payment_intent.succeeded``, which completes the checkout."""
    client = stripe_client(localstripe)
    method = await card_by_stripe_js(localstripe, "4242424242424242")
    await client.v1.payment_intents.update_async(order_id, {"payment_method": method})
    intent = await client.v1.payment_intents.confirm_async(order_id)
    assert intent.status == "succeeded", intent.status
    await client.v1.payment_methods.attach_async(method, {"customer": intent.customer})
    event = json.dumps({"id": f"evt_{order_id}", "object": "event", "type": "payment_intent.succeeded",
                        "data": {"object": intent.to_dict()}})
    headers = {"stripe-signature": stripe.WebhookSignature.generate_signature_header(event, webhook_secret),
               "content-type": "application/json"}
    response = await ledger.api.client.post("/webhooks/stripe", content=event.encode(), headers=headers)
    assert response.status_code == 200, response.text


async def stripe_intents(localstripe) -> list[dict]:
    """Every PaymentIntent at localstripe, page after page."""
    found: list[dict] = []
    after: dict = {}
    while True:
        page = await stripe_client(localstripe).v1.payment_intents.list_async({"limit": 100, **after})
        found += [intent.to_dict() for intent in page.data]
        if not page.has_more or not page.data:
            return found
        after = {"starting_after": page.data[-1].id}


async def charged_at_the_processor(ledger: Ledger) -> None:
    """With Stripe: what the PaymentIntents that succeeded with the journey's cards moved is what
    the journey's invoices show paid (IDR in Stripe's hundredths). Nothing to do for the sandbox."""
    if ledger.processor != "stripe":
        return
    methods, paid = set(), 0
    for tenant in ledger.tenants:
        methods |= {m["gatewayPaymentMethodId"]
                    for m in (await ledger.gql(PAYMENT_METHODS, token=tenant.owner))["paymentMethods"]}
        paid += sum(int(amount(invoice["amountPaid"])) for invoice in await ledger.invoices(tenant))
    succeeded = [intent["amount"] for intent in await stripe_intents(ledger.stripe)
                 if intent["status"] == "succeeded" and intent["payment_method"] in methods]
    assert succeeded and sum(succeeded) == paid * 100, (sum(succeeded), paid)
