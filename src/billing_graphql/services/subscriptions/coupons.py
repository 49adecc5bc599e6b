"""Redeeming a coupon on a subscription and turning it into each period's discount."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Coupon, CouponRedemption, Plan, Subscription
from billing_graphql.domain.catalog import CouponDuration, coupon_refusal
from billing_graphql.domain.coupon_duration import remaining_after
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.invoices import Discount, DiscountKind
from billing_graphql.services.catalog.coupons import coupon_plan_ids, coupon_state


def _coupon_error(code: BillingErrorCode, message: str) -> BillingError:
    return BillingError(code, message, field="couponCode")


async def check_coupon(session: AsyncSession, code: str, plan: Plan, *, now: datetime) -> Coupon:
    """The coupon ``code`` if it may be used on ``plan`` now (COUPON_* errors otherwise); counts nothing.

    ``domain.catalog.coupon_refusal`` decides, in the same order as the ``coupon`` query. Used on
    its own where a price is quoted before the redemption (checkout); ``redeem_coupon`` checks
    again and counts atomically.
    """
    normalized = (code or "").strip().upper()
    coupon = await session.scalar(select(Coupon).where(Coupon.code == normalized)) if normalized else None
    if coupon is None:
        raise _coupon_error(BillingErrorCode.COUPON_INVALID, f"The coupon {code!r} is not valid.")
    state = coupon_state(coupon, await coupon_plan_ids(session, coupon.id))
    refusal = coupon_refusal(state, now=now, plan_id=plan.id, plan_currency=plan.currency)
    if refusal is not None:
        raise _coupon_error(refusal, _refusal_message(refusal, coupon, plan))
    return coupon


def _refusal_message(refusal: BillingErrorCode, coupon: Coupon, plan: Plan) -> str:
    if refusal is BillingErrorCode.COUPON_EXPIRED:
        return f"The coupon {coupon.code} has expired."
    if refusal is BillingErrorCode.COUPON_EXHAUSTED:
        return f"The coupon {coupon.code} has been used up."
    if refusal is BillingErrorCode.COUPON_NOT_APPLICABLE:
        if coupon.currency is not None and coupon.currency != plan.currency:
            return f"The coupon {coupon.code} is in {coupon.currency}; the plan is billed in {plan.currency}."
        return f"The coupon {coupon.code} does not apply to the {plan.name} plan."
    return f"The coupon {coupon.code} is not valid."


async def redeem_coupon(
    session: AsyncSession, code: str, plan: Plan, *, organization_id: uuid.UUID, subscription: Subscription,
    now: datetime,
) -> Coupon:
    """Check a coupon for ``plan`` and count its redemption atomically.

    The count is one conditional UPDATE (``current_uses + 1 WHERE current_uses < max_uses``):
    concurrent redemptions queue on the coupon's row and re-check the condition, so it never
    passes ``max_uses`` (the CHECK constraint ``uses_within_max`` is the backstop).
    """
    coupon = await check_coupon(session, code, plan, now=now)
    normalized = coupon.code
    counted = await session.execute(
        update(Coupon)
        .where(Coupon.id == coupon.id, (Coupon.max_uses.is_(None)) | (Coupon.current_uses < Coupon.max_uses))
        .values(current_uses=Coupon.current_uses + 1)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:
        raise _coupon_error(BillingErrorCode.COUPON_EXHAUSTED, f"The coupon {normalized} has been used up.")
    session.add(CouponRedemption(coupon_id=coupon.id, organization_id=organization_id,
                                 subscription_id=subscription.id, redeemed_at=now))
    subscription.coupon_id = coupon.id
    subscription.coupon_periods_remaining = {
        CouponDuration.ONCE: 1,
        CouponDuration.REPEATING: coupon.duration_in_months,
        CouponDuration.FOREVER: None,
    }[coupon.duration]
    return coupon


def coupon_in_effect(subscription: Subscription) -> bool:
    return subscription.coupon_id is not None and (
        subscription.coupon_periods_remaining is None or subscription.coupon_periods_remaining > 0
    )


def discount_of(coupon: Coupon | None, subscription: Subscription, *, proration: bool) -> Discount | None:
    """The subscription's coupon as a discount, while it still has periods to run.

    Prorations get PERCENTAGE coupons only (the same share off the credit and the charge); a
    FIXED amount is per period and was taken off that period's invoice already.
    """
    if coupon is None or not coupon_in_effect(subscription):
        return None
    return coupon_discount(coupon, proration=proration)


def coupon_discount(coupon: Coupon, *, proration: bool = False) -> Discount | None:
    """A coupon as the discount of a period's invoice (``proration``: PERCENTAGE ones only)."""
    if coupon.discount_type is DiscountKind.PERCENTAGE:
        return Discount(DiscountKind.PERCENTAGE, percent_off=coupon.percent_off)
    if proration:
        return None
    return Discount(DiscountKind.FIXED, amount_off=coupon.amount_off, currency=coupon.currency)


def consume_coupon_period(subscription: Subscription) -> None:
    """A period's invoice used the coupon: the period's months are spent (``domain.coupon_duration``:
    a monthly period one, an annual one twelve); none left ends it.

    Called for the invoice of each billing period (the first one at subscribe; the billing run
    for renewals), never for prorations.
    """
    if subscription.coupon_id is None or subscription.coupon_periods_remaining is None:
        return
    subscription.coupon_periods_remaining = remaining_after(subscription.coupon_periods_remaining,
                                                            subscription.billing_period.months)
    if subscription.coupon_periods_remaining == 0:
        subscription.coupon_id = None
        subscription.coupon_periods_remaining = None
