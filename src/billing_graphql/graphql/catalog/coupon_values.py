"""A coupon's discount as one value (seed 001's ``discount_value``): the percent for PERCENTAGE
coupons, major units of the coupon's currency for FIXED ones. The services keep percent and
amount apart; this maps between the two and names ``discountValue`` in errors."""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

from billing_graphql.db.models import Coupon, DiscountKind
from billing_graphql.domain.errors import BillingError, validation
from billing_graphql.domain.money import Money

FIELD = "discountValue"
_SERVICE_FIELDS = {"percentOff", "amountOff"}
T = TypeVar("T")


def discount_value(coupon: Coupon) -> Decimal:
    if coupon.discount_type is DiscountKind.PERCENTAGE:
        return Decimal(coupon.percent_off)
    return Money(coupon.amount_off, coupon.currency).amount


def split_discount(discount_type: DiscountKind, value: Decimal) -> tuple[int | None, Decimal | None]:
    """(percent off, amount off) for the service, from a discountValue of that type."""
    if discount_type is DiscountKind.PERCENTAGE:
        if value != value.to_integral_value():
            raise validation("A PERCENTAGE coupon's discountValue is a whole percent, 1 to 100.", FIELD)
        return int(value), None
    return None, value


async def naming_discount_value(awaitable: Awaitable[T]) -> T:
    """Await a coupon service call; its errors on percentOff/amountOff are about discountValue."""
    try:
        return await awaitable
    except BillingError as error:
        if error.field in _SERVICE_FIELDS:
            error.message = error.message.replace("percentOff", FIELD).replace("amountOff", FIELD)
            error.field = FIELD
            error.args = (error.message,)
        raise


def discount_value_patch(discount_type: Any, value: Any, stored_type: DiscountKind | None) -> dict[str, Any]:
    """The percent/amount fields of an update carrying discountValue (nothing when it is left out)."""
    if value is None:
        raise validation("discountValue cannot be null.", FIELD)
    kind = discount_type if isinstance(discount_type, DiscountKind) else stored_type
    percent, amount = split_discount(kind, value)
    return {"percent_off": percent} if kind is DiscountKind.PERCENTAGE else {"amount_off": amount}
