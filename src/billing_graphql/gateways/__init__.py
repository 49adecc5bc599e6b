"""Payment processors behind one protocol; ``get_gateway(name, settings)`` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from billing_graphql.gateways.base import (
    ChargeOutcome,
    ChargeResult,
    GatewayError,
    Order,
    PaymentGateway,
    RefundResult,
    SavedMethod,
)

if TYPE_CHECKING:
    from billing_graphql.domain.errors import BillingErrorCode
    from billing_graphql.settings import Settings

GATEWAY_NAMES = ("sandbox", "razorpay", "stripe")

__all__ = [
    "GATEWAY_NAMES",
    "ChargeOutcome",
    "ChargeResult",
    "GatewayError",
    "Order",
    "PaymentGateway",
    "RefundResult",
    "SavedMethod",
    "GatewayRegistry",
    "get_gateway",
]


def get_gateway(name: str, settings: Settings) -> PaymentGateway:
    """The processor called ``name``; an unknown name is a ValueError."""
    if name == "sandbox":
        from billing_graphql.gateways.sandbox import SandboxGateway

        return SandboxGateway()
    if name == "razorpay":
        # Imported lazily: its HTTP client is only needed where Razorpay is used.
        from billing_graphql.gateways.razorpay import RazorpayGateway

        return RazorpayGateway.from_settings(settings)
    if name == "stripe":
        if not settings.stripe_secret_key:
            raise GatewayError("Stripe is not configured")
        from billing_graphql.gateways.stripe import StripeGateway

        return StripeGateway.from_settings(settings)
    raise ValueError(f"Unknown payment gateway {name!r}; known: {', '.join(GATEWAY_NAMES)}.")


class GatewayRegistry:
    """The application's gateways by name, built once from the settings (kept in the app's
    state and handed to services); ``overrides`` replace configured ones (tests)."""

    def __init__(self, settings: Settings, overrides: dict[str, PaymentGateway] | None = None) -> None:
        self._settings = settings
        self._gateways: dict[str, PaymentGateway] = dict(overrides or {})

    def get(self, name: str) -> PaymentGateway:
        """The gateway called ``name``; ValueError for an unknown name, GatewayError when it is
        not configured."""
        gateway = self._gateways.get(name)
        if gateway is None:
            gateway = self._gateways[name] = get_gateway(name, self._settings)
        return gateway

    @property
    def checkout_default(self) -> str:
        """The gateway a checkout uses when none is asked for: Razorpay once its key id is
        configured, else the sandbox."""
        return "razorpay" if self._settings.razorpay_key_id else "sandbox"

    def require(self, name: str, field: str | None = None, *, code: BillingErrorCode | None = None) -> PaymentGateway:
        """Like ``get``, as a business error when the gateway is unavailable: PAYMENT_FAILED, or
        ``code`` (VALIDATION where the client named the gateway)."""
        from billing_graphql.domain.errors import BillingError, BillingErrorCode

        try:
            return self.get(name)
        except (GatewayError, LookupError, ValueError) as exc:
            raise BillingError(code or BillingErrorCode.PAYMENT_FAILED, f"The {name} gateway is not available: {exc}",
                               field=field) from None

    __call__ = get
