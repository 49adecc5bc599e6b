"""The three processors as the contract suite drives them: the gateway under test, plus what the
test needs from the processor's side (saving a card the processor's way, arming a lost answer,
counting the charges the processor holds for a key, signing an event as the processor signs it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import stripe

from billing_graphql.gateways.base import ChargeResult, GatewayError, RefundResult
from billing_graphql.gateways.razorpay import RazorpayGateway
from billing_graphql.gateways.sandbox import ACTION_TOKEN, SandboxGateway, webhook_headers
from billing_graphql.gateways.stripe import StripeGateway
from tests.gateways.contract.razorpay_fake import RazorpayFake
from tests.gateways.contract.servers import IdempotentProxy

CURRENCY = "USD"
WEBHOOK_SECRET = "whsec_contract_secret_for_tests"
SANDBOX_WEBHOOK_SECRET = "whsec_" + "c2FuZGJveC1jb250cmFjdC1zZWNyZXQ="  # Standard Webhooks: base64 after whsec_
RAZORPAY_WEBHOOK_SECRET = "razorpay_contract_webhook_secret"


class SandboxProcessor:
    """The sandbox in process. Its ledger is what it answered: charges and refunds by key (the
    sandbox derives ids from keys, so a repeated key is the same charge); a lost answer is the
    sandbox's work done and the answer dropped on the way back."""

    name = "sandbox"
    has_action_required = True

    def __init__(self) -> None:
        self.gateway = _RecordingSandbox()
        self.settings = {"sandbox_webhook_secret": SANDBOX_WEBHOOK_SECRET}

    async def new_customer(self) -> str:
        return await self.gateway.create_customer(organization_id=str(uuid.uuid4()), name="Acme", email=None)

    async def save_card(self, customer: str, kind: str = "ok") -> str:
        return {"ok": "pm_card_visa", "declined": "pm_card_insufficient_funds", "action": ACTION_TOKEN}[kind]

    def lose_next_charge_answer(self) -> None:
        self.gateway.lose_next = True

    def charges_with(self, key: str) -> int:
        return len(self.gateway.charges.get(key, set()))

    async def refunded(self, payment_id: str) -> int:
        return sum(amount for charge, amount in self.gateway.refunds.values() if charge == payment_id)

    async def succeeded_event(self, payment_id: str | None, key: str) -> dict[str, Any]:
        payment_id = payment_id or next(iter(self.gateway.charges[key]))
        return {"type": "payment.captured", "data": {"payment_id": payment_id, "idempotency_key": key}}

    def deliver(self, event: dict[str, Any], *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event).encode()
        return body, webhook_headers(secret or SANDBOX_WEBHOOK_SECRET, f"msg_{uuid.uuid4().hex}", body)

    def forged_secret(self) -> str:
        return "whsec_" + "Zm9yZ2VkLWZvcmdlZC1mb3JnZWQ="

    def close(self) -> None:
        pass


class _RecordingSandbox(SandboxGateway):
    def __init__(self) -> None:
        super().__init__(slow_seconds=0)
        self.charges: dict[str, set[str]] = {}
        self.refunds: dict[str, tuple[str, int]] = {}
        self.lose_next = False

    async def charge(self, **kwargs: Any) -> ChargeResult:
        result = await super().charge(**kwargs)
        self.charges.setdefault(kwargs["idempotency_key"], set()).add(result.gateway_payment_id)
        if self.lose_next:
            self.lose_next = False
            raise GatewayError("sandbox: the answer was lost (timeout)")
        return result

    async def refund(self, **kwargs: Any) -> RefundResult:
        result = await super().refund(**kwargs)
        charge = kwargs["gateway_payment_id"]
        already = sum(amount for paid, amount in self.refunds.values() if paid == charge)
        key = kwargs["idempotency_key"]
        if key not in self.refunds and already + kwargs["amount"] > self.charged_amount(charge):
            return RefundResult(succeeded=False, failure_message="sandbox: more than was charged")
        self.refunds.setdefault(key, (charge, kwargs["amount"]))
        return result

    def charged_amount(self, charge: str) -> int:
        return CHARGE_AMOUNT  # the suite charges one amount


CHARGE_AMOUNT = 1900


class RazorpayProcessor:
    """Razorpay's gateway over its HTTP API, served by the stateful fake in ``razorpay_fake``.
    Razorpay has no 3-D Secure step on recurring (saved-token) payments."""

    name = "razorpay"
    has_action_required = False

    def __init__(self) -> None:
        self.fake = RazorpayFake()
        self.gateway = RazorpayGateway(key_id="rzp_test_contract", key_secret="contract_key_secret",
                                       webhook_secret=RAZORPAY_WEBHOOK_SECRET, base_url="https://razorpay.test",
                                       transport=self.fake.transport())
        self.settings = {"razorpay_key_id": "rzp_test_contract", "razorpay_key_secret": "contract_key_secret",
                         "razorpay_webhook_secret": RAZORPAY_WEBHOOK_SECRET}

    async def new_customer(self) -> str:
        return await self.gateway.create_customer(organization_id=str(uuid.uuid4()), name="Acme",
                                                  email="billing@acme.test")

    async def save_card(self, customer: str, kind: str = "ok") -> str:
        if kind == "action":
            raise AssertionError("Razorpay has no action-required outcome on saved tokens")
        return self.fake.save_token(customer, declines=kind == "declined")

    def lose_next_charge_answer(self) -> None:
        self.fake.lose_next_answer_to = "/v1/payments/create/recurring"

    def charges_with(self, key: str) -> int:
        return self.fake.charges_with(key)

    async def refunded(self, payment_id: str) -> int:
        return self.fake.refunded(payment_id)

    async def succeeded_event(self, payment_id: str | None, key: str) -> dict[str, Any]:
        payment = self.fake.payments[payment_id] if payment_id else next(
            p for p in self.fake.payments.values() if p["notes"].get("idempotency_key") == key)
        return {"entity": "event", "event": "payment.captured",
                "payload": {"payment": {"entity": payment}}}

    def deliver(self, event: dict[str, Any], *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event).encode()
        signature = hmac.new((secret or RAZORPAY_WEBHOOK_SECRET).encode(), body, hashlib.sha256).hexdigest()
        return body, {"x-razorpay-signature": signature, "x-razorpay-event-id": f"evt_{uuid.uuid4().hex[:14]}"}

    def forged_secret(self) -> str:
        return "not_the_razorpay_webhook_secret"

    def close(self) -> None:
        pass


class StripeProcessor:
    """Stripe's gateway through the ``stripe`` library against localstripe, reached through
    ``IdempotentProxy`` (localstripe ignores ``Idempotency-Key``; the proxy keeps Stripe's promise
    that a repeated key gets the first answer, and can lose an answer after localstripe did the work)."""

    name = "stripe"
    has_action_required = True

    def __init__(self, localstripe_url: str) -> None:
        self.proxy = IdempotentProxy(localstripe_url).start()
        self.gateway = StripeGateway(secret_key="sk_test_contract", publishable_key="pk_test_contract",
                                     webhook_secret=WEBHOOK_SECRET, api_base=self.proxy.url)
        self.settings = {"stripe_secret_key": "sk_test_contract", "stripe_publishable_key": "pk_test_contract",
                         "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_api_base": self.proxy.url}

    async def new_customer(self) -> str:
        return await self.gateway.create_customer(organization_id=str(uuid.uuid4()), name="Acme",
                                                  email="billing@acme.test")

    async def save_card(self, customer: str, kind: str = "ok") -> str:
        # Stripe's test PaymentMethods: what Stripe.js hands the SPA; the card itself stays at Stripe.
        if kind == "action":  # Stripe's 3-D Secure test card, made where Stripe.js would make it
            method = await self.gateway.client.v1.payment_methods.create_async(
                {"type": "card", "card": {"number": "4000002500003155", "exp_month": 12, "exp_year": 2030,
                                          "cvc": "123"}})
            pm = method.id
        else:
            pm = {"ok": "pm_card_visa", "declined": "pm_card_chargeCustomerFail"}[kind]
        details = await self.gateway.attach_payment_method(pm, customer)
        assert details is not None and details.customer == customer
        return details.payment_method_id

    def lose_next_charge_answer(self) -> None:
        self.proxy.drop_next = True

    def charges_with(self, key: str) -> int:
        return sum(1 for method, path, sent in self.proxy.forwarded
                   if (method, path, sent) == ("POST", "/v1/payment_intents", key))

    async def refunded(self, payment_id: str) -> int:
        refunds = await self.gateway.client.v1.refunds.list_async({"payment_intent": payment_id})
        return sum(refund.amount for refund in refunds.data)

    async def succeeded_event(self, payment_id: str | None, key: str) -> dict[str, Any]:
        assert payment_id is not None or self.proxy.answers.get(key)
        if payment_id is None:
            payment_id = json.loads(self.proxy.answers[key][1])["id"]
        intent = await self.gateway.client.v1.payment_intents.retrieve_async(payment_id)
        return {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "payment_intent.succeeded",
                "api_version": stripe.api_version, "data": {"object": intent.to_dict()}}

    def deliver(self, event: dict[str, Any], *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, secret or WEBHOOK_SECRET)
        return payload.encode(), {"stripe-signature": header}

    def forged_secret(self) -> str:
        return "whsec_forged"

    def close(self) -> None:
        self.proxy.stop()
