"""Expected business failures: a code, a message and the input field they concern."""

from __future__ import annotations

import enum
from typing import Any


class BillingErrorCode(enum.Enum):
    NO_SUBSCRIPTION = "NO_SUBSCRIPTION"
    ALREADY_SUBSCRIBED = "ALREADY_SUBSCRIBED"
    SUBSCRIPTION_CANCELED = "SUBSCRIPTION_CANCELED"
    NOT_PENDING_CANCELLATION = "NOT_PENDING_CANCELLATION"
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    PLAN_NOT_FOUND = "PLAN_NOT_FOUND"
    PLAN_NOT_AVAILABLE = "PLAN_NOT_AVAILABLE"
    SAME_PLAN = "SAME_PLAN"
    COUPON_INVALID = "COUPON_INVALID"
    COUPON_EXPIRED = "COUPON_EXPIRED"
    COUPON_EXHAUSTED = "COUPON_EXHAUSTED"
    COUPON_NOT_APPLICABLE = "COUPON_NOT_APPLICABLE"
    ADDON_NOT_FOUND = "ADDON_NOT_FOUND"
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"
    CREDIT_EXCEEDS_INVOICE = "CREDIT_EXCEEDS_INVOICE"
    NOT_REFUNDABLE = "NOT_REFUNDABLE"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    SPENDING_CAP_TOO_LOW = "SPENDING_CAP_TOO_LOW"
    PORTAL_ERROR = "PORTAL_ERROR"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION = "VALIDATION"


class BillingError(Exception):
    """A failure the caller can act on; the GraphQL layer returns it as data."""

    def __init__(
        self,
        code: BillingErrorCode,
        message: str,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details

    def __repr__(self) -> str:
        return f"BillingError({self.code.value}, {self.message!r}, field={self.field!r})"


def not_found(what: str, field: str | None = "id") -> BillingError:
    return BillingError(BillingErrorCode.NOT_FOUND, f"{what} not found.", field=field)


def validation(message: str, field: str | None) -> BillingError:
    return BillingError(BillingErrorCode.VALIDATION, message, field=field)
