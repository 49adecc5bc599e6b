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
)

if TYPE_CHECKING:
    from billing_graphql.settings import Settings

GATEWAY_NAMES = ("sandbox", "razorpay")

__all__ = [
    "GATEWAY_NAMES",
    "ChargeOutcome",
    "ChargeResult",
    "GatewayError",
    "Order",
    "PaymentGateway",
    "RefundResult",
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
    raise ValueError(f"Unknown payment gateway {name!r}; known: {', '.join(GATEWAY_NAMES)}.")
