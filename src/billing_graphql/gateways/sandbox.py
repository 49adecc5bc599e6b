"""The built-in sandbox processor: no network, deterministic by token, as Stripe's test tokens are.

Outcome of a charge by payment-method token:

    pm_card_visa, pm_card_mastercard, tok_visa, tok_mastercard   succeed
    pm_card_declined, pm_card_chargeDeclined                      decline: card_declined
    (pm_card_declined, pm_card_insufficient_funds and pm_card_expired are refused when saved:
    ``verify_payment_method``; the chargeDeclined ones save and decline later, as at Stripe)
    pm_card_insufficient_funds,
    pm_card_chargeDeclinedInsufficientFunds                       decline: insufficient_funds
    pm_card_expired, pm_card_chargeDeclinedExpiredCard            decline: expired_card
    pm_card_authenticationRequired                                action required (3-D Secure)
    pm_card_error                                                 GatewayError (processor fault)
    pm_card_slow                                                  succeeds after SLOW_SECONDS
    any other token                                               succeeds (like pm_card_visa)

Ids are derived from the idempotency key (``ch_sandbox_<hash>``), so a retried call with the same
key returns the same id, as a real processor's idempotency does. Checkout signatures are
HMAC-SHA256(order_id + "|" + payment_id) under ``SANDBOX_SECRET`` (``sign_payment`` makes one).
The method that pays a checkout is saved under the payment id the client confirms with: that id is
its token (so a checkout paid as ``pm_card_declined`` leaves a card whose later charges decline).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing_graphql.gateways.base import CardCheck, ChargeOutcome, ChargeResult, GatewayError, Order, RefundResult, SavedMethod

SANDBOX_SECRET = "sandbox_secret"
SLOW_SECONDS = 0.05

SUCCEEDING_TOKENS = frozenset({"pm_card_visa", "pm_card_mastercard", "tok_visa", "tok_mastercard"})
DECLINES: dict[str, tuple[str, str]] = {
    "pm_card_declined": ("card_declined", "Your card was declined."),
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_insufficient_funds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_expired": ("expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
}
# Refused when the card is saved (the zero-amount check a SetupIntent makes), as at Stripe; the
# ``chargeDeclined`` tokens save and decline later.
SETUP_DECLINES = frozenset({"pm_card_declined", "pm_card_insufficient_funds", "pm_card_expired"})
# What the sandbox says about the cards it knows: brand, last 4, expiry.
CARD_DETAILS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"), "tok_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"), "tok_mastercard": ("mastercard", "4444"),
    "pm_card_chargeDeclined": ("visa", "0341"), "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069"), "pm_card_authenticationRequired": ("visa", "3184"),
}
CARD_EXPIRY = (12, 2034)
ACTION_TOKEN = "pm_card_authenticationRequired"
ERROR_TOKEN = "pm_card_error"
SLOW_TOKEN = "pm_card_slow"


def _derived(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}_sandbox_{digest}"


def sign_payment(order_id: str, payment_id: str, secret: str = SANDBOX_SECRET) -> str:
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


class SandboxGateway:
    name = "sandbox"

    def __init__(self, *, slow_seconds: float = SLOW_SECONDS) -> None:
        self.slow_seconds = slow_seconds

    async def create_customer(self, *, organization_id: str, name: str, email: str | None) -> str:
        return _derived("cus", organization_id)

    async def charge(
        self, *, customer_id: str | None, payment_method_token: str, amount: int, currency: str,
        idempotency_key: str, description: str,
    ) -> ChargeResult:
        if amount <= 0:
            raise GatewayError(f"sandbox: amount must be positive, got {amount}")
        if not idempotency_key:
            raise GatewayError("sandbox: an idempotency key is required")
        payment_id = _derived("ch", idempotency_key)
        if payment_method_token == ERROR_TOKEN:
            raise GatewayError("sandbox: the processor answered 500 (pm_card_error)")
        if payment_method_token == SLOW_TOKEN:
            await asyncio.sleep(self.slow_seconds)
        decline = DECLINES.get(payment_method_token)
        if decline is not None:
            code, message = decline
            return ChargeResult(ChargeOutcome.DECLINED, payment_id, failure_code=code, failure_message=message)
        if payment_method_token == ACTION_TOKEN:
            return ChargeResult(ChargeOutcome.ACTION_REQUIRED, payment_id, failure_code="authentication_required",
                                failure_message="The customer must confirm this payment (3-D Secure).")
        return ChargeResult(ChargeOutcome.SUCCEEDED, payment_id)

    async def verify_payment_method(self, *, token: str) -> CardCheck:
        """The check made before a card is saved: declined for ``SETUP_DECLINES``, with the
        processor's sentence; brand, last 4 and expiry for the cards it knows."""
        if token in SETUP_DECLINES:
            code, message = DECLINES[token]
            return CardCheck(declined=True, failure_code=code, failure_message=message)
        brand, last4 = CARD_DETAILS.get(token, (None, None))
        if brand is None:
            return CardCheck(declined=False)
        return CardCheck(declined=False, brand=brand, last4=last4, exp_month=CARD_EXPIRY[0], exp_year=CARD_EXPIRY[1])

    async def refund(
        self, *, gateway_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult:
        if amount <= 0:
            raise GatewayError(f"sandbox: refund amount must be positive, got {amount}")
        return RefundResult(succeeded=True, gateway_refund_id=_derived("re", idempotency_key))

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, idempotency_key: str, customer_id: str | None = None,
        save_method: bool = False,
    ) -> Order:
        if amount <= 0:
            raise GatewayError(f"sandbox: order amount must be positive, got {amount}")
        return Order(order_id=_derived("order", idempotency_key), amount=amount, currency=currency, key_id="sandbox")

    async def saved_method(self, *, order_id: str, payment_id: str) -> SavedMethod | None:
        return SavedMethod(token=payment_id, type="CREDIT_CARD", label="Sandbox card")

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        return hmac.compare_digest(sign_payment(order_id, payment_id), signature or "")

    def verify_webhook(self, *, body: bytes, signature: str) -> bool:
        expected = hmac.new(SANDBOX_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature or "")


# ---- webhooks: Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature) ----------

def webhook_headers(secret: str, event_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The headers the sandbox processor sends with an event (for tests and demos)."""
    at = at or datetime.now(UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body.decode()),
    }


def verify_standard_webhook(secret: str, body: bytes, headers: dict[str, str]) -> str | None:
    """The event id of a correctly signed event at most 5 minutes (300 s) off our clock, else None."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError, UnicodeDecodeError):
        return None
    return headers.get("webhook-id")
