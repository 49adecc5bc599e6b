"""The protocol every payment processor implements. Amounts cross it as integer minor units."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class GatewayError(Exception):
    """The processor could not be reached or answered with an error (not a decline)."""


class ChargeOutcome(enum.Enum):
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    # The processor wants the customer to confirm on-session (3-D Secure, SCA): no money moved;
    # the payment is recorded as failed and the invoice stays OPEN with a payment URL.
    ACTION_REQUIRED = "ACTION_REQUIRED"


@dataclass(frozen=True, slots=True)
class ChargeResult:
    outcome: ChargeOutcome
    gateway_payment_id: str | None = None
    failure_code: str | None = None  # "card_declined", "insufficient_funds", "expired_card", ...
    failure_message: str | None = None
    action_url: str | None = None  # ACTION_REQUIRED: where the customer confirms, when the processor gives one


@dataclass(frozen=True, slots=True)
class RefundResult:
    succeeded: bool
    gateway_refund_id: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """A processor-side order a client SDK completes (checkout)."""

    order_id: str
    amount: int
    currency: str
    key_id: str | None = None
    client_secret: str | None = None  # Stripe: the PaymentIntent's client secret for Stripe.js


@dataclass(frozen=True, slots=True)
class SavedMethod:
    """The reusable payment method a paid checkout left at the processor: its token (what later
    charges send) and what may be shown of it. ``type`` is a PaymentMethodType value."""

    token: str
    type: str = "CREDIT_CARD"
    label: str = ""
    brand: str | None = None
    last4: str | None = None


@dataclass(frozen=True, slots=True)
class CardCheck:
    """What a processor says of a card before it is saved (``verify_payment_method``, where a
    processor offers it): declined with its reason, or accepted with what may be shown of it."""

    declined: bool
    failure_code: str | None = None
    failure_message: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


class PaymentGateway(Protocol):
    name: str

    async def create_customer(self, *, organization_id: str, name: str, email: str | None) -> str: ...

    async def charge(
        self, *, customer_id: str | None, payment_method_token: str, amount: int, currency: str,
        idempotency_key: str, description: str,
    ) -> ChargeResult: ...

    async def refund(
        self, *, gateway_payment_id: str, amount: int, currency: str, idempotency_key: str
    ) -> RefundResult: ...

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, idempotency_key: str, customer_id: str | None = None,
        save_method: bool = False,
    ) -> Order:
        """An order for a client SDK; ``save_method`` asks the processor to keep the method that
        pays it (for ``customer_id``) so that later charges can use it."""
        ...

    async def saved_method(self, *, order_id: str, payment_id: str) -> SavedMethod | None:
        """The reusable method the payment of a checkout order left, or None when there is none."""
        ...

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool: ...

    def verify_webhook(self, *, body: bytes, signature: str) -> bool: ...
