"""What the subscription services share: loading under the lock, prices, seats, coupons, results.

Seat billing: the billed agent count is the organization's ``agents`` gauge (usage counter with
period key "current") when one exists, else the subscription's stored ``agent_count`` (1 for a
new one). It is copied onto the subscription whenever the subscription is priced (subscribe, a
plan or add-on change), so ``agent_count`` is always what the current period was billed for,
and a later change credits exactly that.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import lock_organization
from billing_graphql.db.models import (
    Addon,
    AddonUnit,
    BillingReason,
    Coupon,
    CouponDuration,
    CouponPlan,
    CouponRedemption,
    DiscountType,
    Invoice,
    Metric,
    Organization,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionAddon,
    UsageCounter,
)
from billing_graphql.domain.coupon_duration import remaining_after
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found
from billing_graphql.domain.invoices import Discount, DiscountKind, InvoiceDraft, LineDraft, Totals
from billing_graphql.domain.periods import BillingPeriod, period_at
from billing_graphql.domain.proration import AddonPrice, PlanPrice, Recurring
from billing_graphql.domain.status import LIVE_STATUSES, SubscriptionStatus, transition
from billing_graphql.domain.tax import TaxRule
from billing_graphql.gateways import PaymentGateway, get_gateway
from billing_graphql.services.billing.invoicing import (
    charge_invoice,
    create_invoice,
    default_payment_method,
    finalize_invoice,
)
from billing_graphql.settings import Settings

SUBSCRIPTION_FIELDS = (
    "plan_id", "status", "billing_period", "current_period_start", "current_period_end", "trial_ends_at",
    "cancel_at_period_end", "cancel_reason", "agent_count", "coupon_id", "coupon_periods_remaining",
    "spending_cap", "pending_plan_id", "pending_billing_period", "payment_gateway", "gateway_customer_id",
    "gateway_subscription_id",
)


@dataclass(frozen=True, slots=True)
class InvoicePreview:
    """What a change would bill (a dry run), or did: lines and totals; ``credit_added`` for credits."""

    currency: str
    lines: tuple[LineDraft, ...]
    subtotal: int
    discount: int
    tax: int
    tax_rule: TaxRule | None
    total: int
    credit_applied: int
    amount_due: int
    credit_added: int

    @classmethod
    def of_invoice(cls, draft: InvoiceDraft) -> InvoicePreview:
        return cls(draft.currency, draft.lines, draft.subtotal, draft.discount, draft.tax, draft.tax_rule,
                   draft.total, draft.credit_applied, draft.amount_due, 0)

    @classmethod
    def of_credit(cls, lines: list[LineDraft], totals: Totals) -> InvoicePreview:
        return cls(totals.currency, tuple(lines), totals.subtotal, totals.discount, totals.tax, totals.tax_rule,
                   totals.total, 0, 0, -totals.total)


@dataclass(slots=True)
class SubscriptionChange:
    """The outcome of a subscription service call."""

    subscription: Subscription
    invoice: Invoice | None = None
    payment: Payment | None = None
    credit_added: int = 0
    preview: InvoicePreview | None = None
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def payment_error(self) -> BillingError | None:
        """PAYMENT_FAILED when the charge was declined or is pending after a processor fault."""
        if self.payment is None or self.payment.status is PaymentStatus.SUCCEEDED:
            return None
        if self.payment.status is PaymentStatus.PENDING:
            message = "The payment processor did not answer; the payment is pending and will be reconciled."
        else:
            message = f"The payment failed ({self.payment.failure_code}): {self.payment.failure_message}"
        return BillingError(BillingErrorCode.PAYMENT_FAILED, message, field="paymentMethodId")

    def response(self) -> dict[str, Any]:
        """What the idempotency record stores: ids to rebuild this result from."""
        return {
            "subscription_id": self.subscription.id,
            "invoice_id": self.invoice.id if self.invoice else None,
            "payment_id": self.payment.id if self.payment else None,
            "credit_added": self.credit_added,
        }


async def result_from_response(session: AsyncSession, response: dict[str, Any]) -> SubscriptionChange:
    subscription = await session.get(Subscription, uuid.UUID(response["subscription_id"]))
    invoice = await session.get(Invoice, uuid.UUID(response["invoice_id"])) if response.get("invoice_id") else None
    payment = await session.get(Payment, uuid.UUID(response["payment_id"])) if response.get("payment_id") else None
    return SubscriptionChange(subscription=subscription, invoice=invoice, payment=payment,
                              credit_added=int(response.get("credit_added") or 0), replayed=True)


async def locked_organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """Take the organization's lock (first, before reading anything) and load it."""
    await lock_organization(session, organization_id)
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise not_found("Organization", "organizationId")
    return organization


async def live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> Subscription | None:
    return await session.scalar(
        select(Subscription).where(
            Subscription.organization_id == organization_id,
            Subscription.status.in_([status for status in LIVE_STATUSES]),
        )
    )


async def require_live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> Subscription:
    """The live subscription; SUBSCRIPTION_CANCELED when only canceled ones exist, else NO_SUBSCRIPTION."""
    subscription = await live_subscription(session, organization_id)
    if subscription is not None:
        return subscription
    canceled = await session.scalar(
        select(Subscription.id).where(
            Subscription.organization_id == organization_id, Subscription.status == SubscriptionStatus.CANCELED
        ).limit(1)
    )
    if canceled is not None:
        raise BillingError(BillingErrorCode.SUBSCRIPTION_CANCELED,
                           "The subscription is canceled; subscribe again to start a new one.")
    raise BillingError(BillingErrorCode.NO_SUBSCRIPTION, "The organization has no subscription.")


async def resolve_plan(session: AsyncSession, plan_id: uuid.UUID | None, field_name: str = "planId") -> Plan:
    """The plan asked for (PLAN_NOT_FOUND / PLAN_NOT_AVAILABLE), or the cheapest active one."""
    if plan_id is None:
        plan = await session.scalar(
            select(Plan).where(Plan.is_active.is_(True))
            .order_by(Plan.base_price_monthly, Plan.sort_order, Plan.name, Plan.id).limit(1)
        )
        if plan is None:
            raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "There is no active plan to subscribe to.",
                               field=field_name)
        return plan
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field=field_name)
    if not plan.is_active:
        raise BillingError(BillingErrorCode.PLAN_NOT_AVAILABLE, f"The plan {plan.name!r} is not available.",
                           field=field_name)
    return plan


async def current_agents(session: AsyncSession, organization_id: uuid.UUID, fallback: int) -> int:
    value = await session.scalar(
        select(UsageCounter.value)
        .join(Metric, Metric.id == UsageCounter.metric_id)
        .where(UsageCounter.organization_id == organization_id, Metric.code == "agents",
               UsageCounter.period_key == "current")
    )
    return fallback if value is None else int(value)


def plan_price(plan: Plan) -> PlanPrice:
    return PlanPrice(plan.name, plan.currency, plan.base_price_monthly, plan.base_price_annual,
                     plan.per_agent_price, plan.included_agents)


def addon_price(addon: Addon, quantity: int) -> AddonPrice:
    return AddonPrice(addon.name, addon.price_monthly, addon.price_annual, quantity,
                      per_agent=addon.unit is AddonUnit.PER_AGENT)


async def attached_addons(session: AsyncSession, subscription_id: uuid.UUID) -> list[tuple[SubscriptionAddon, Addon]]:
    rows = await session.execute(
        select(SubscriptionAddon, Addon)
        .join(Addon, Addon.id == SubscriptionAddon.addon_id)
        .where(SubscriptionAddon.subscription_id == subscription_id)
        .order_by(Addon.sort_order, Addon.name, Addon.id)
    )
    return [(attached, addon) for attached, addon in rows.all()]


def recurring(plan: Plan, billing_period: BillingPeriod, agents: int,
              addons: list[tuple[SubscriptionAddon, Addon]]) -> Recurring:
    return Recurring(plan_price(plan), billing_period, agents,
                     tuple(addon_price(addon, attached.quantity) for attached, addon in addons))


async def new_subscription(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    plan: Plan,
    billing_period: BillingPeriod,
    agents: int,
    trial: bool,
    payment_gateway: str,
    now: datetime,
) -> Subscription:
    """A new subscription row, added and flushed (the one-live-per-organization index checks it).

    ``trial``: TRIALING for the plan's trial days, the trial being the first period and paid
    periods anchored on its end. Otherwise ACTIVE, anchored ``now``, in its first paid period.
    Used by ``subscribe`` and by checkout confirmation.
    """
    if trial:
        trial_end = now + timedelta(days=plan.trial_days)
        anchor, period_start, period_end = trial_end, now, trial_end
    else:
        first = period_at(now, billing_period, 0)
        anchor, period_start, period_end, trial_end = now, first.start, first.end, None
    subscription = Subscription(
        id=uuid.uuid4(),
        organization_id=organization_id,
        plan_id=plan.id,
        status=SubscriptionStatus.TRIALING if trial else SubscriptionStatus.ACTIVE,
        billing_period=billing_period,
        period_anchor=anchor,
        current_period_start=period_start,
        current_period_end=period_end,
        trial_ends_at=trial_end,
        cancel_at_period_end=False,
        agent_count=agents,
        payment_gateway=payment_gateway,
        retry_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription


def gateway_for(name: str, settings: Settings) -> PaymentGateway:
    return get_gateway(name, settings)


# ---- coupons --------------------------------------------------------------------------------

def _coupon_error(code: BillingErrorCode, message: str) -> BillingError:
    return BillingError(code, message, field="couponCode")


async def check_coupon(session: AsyncSession, code: str, plan: Plan, *, now: datetime) -> Coupon:
    """The coupon ``code`` if it may be used on ``plan`` now (COUPON_* errors otherwise); counts nothing.

    Used on its own where a price is quoted before the redemption (checkout); ``redeem_coupon``
    checks again and counts atomically.
    """
    normalized = (code or "").strip().upper()
    coupon = await session.scalar(select(Coupon).where(Coupon.code == normalized)) if normalized else None
    if coupon is None or not coupon.is_active:
        raise _coupon_error(BillingErrorCode.COUPON_INVALID, f"The coupon {code!r} is not valid.")
    if coupon.valid_from is not None and now < coupon.valid_from:
        raise _coupon_error(BillingErrorCode.COUPON_INVALID, f"The coupon {normalized} is not valid yet.")
    if coupon.valid_until is not None and now >= coupon.valid_until:
        raise _coupon_error(BillingErrorCode.COUPON_EXPIRED, f"The coupon {normalized} has expired.")
    plans = set((await session.scalars(select(CouponPlan.plan_id).where(CouponPlan.coupon_id == coupon.id))).all())
    if plans and plan.id not in plans:
        raise _coupon_error(BillingErrorCode.COUPON_NOT_APPLICABLE,
                            f"The coupon {normalized} does not apply to the {plan.name} plan.")
    if coupon.discount_type is DiscountType.FIXED and coupon.currency != plan.currency:
        raise _coupon_error(BillingErrorCode.COUPON_NOT_APPLICABLE,
                            f"The coupon {normalized} is in {coupon.currency}; the plan is billed in {plan.currency}.")
    if coupon.max_uses is not None and coupon.current_uses >= coupon.max_uses:
        raise _coupon_error(BillingErrorCode.COUPON_EXHAUSTED, f"The coupon {normalized} has been used up.")
    return coupon


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
    if coupon.discount_type is DiscountType.PERCENTAGE:
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


# ---- billing --------------------------------------------------------------------------------

async def payment_method_for(
    session: AsyncSession, organization_id: uuid.UUID, payment_method_id: uuid.UUID | None
) -> PaymentMethod | None:
    """The method asked for (the organization's own, else NOT_FOUND), or the default one."""
    if payment_method_id is None:
        return await default_payment_method(session, organization_id)
    method = await session.scalar(
        select(PaymentMethod).where(PaymentMethod.id == payment_method_id,
                                    PaymentMethod.organization_id == organization_id)
    )
    if method is None:
        raise not_found("Payment method", "paymentMethodId")
    return method


def require_payment_method(draft: InvoiceDraft, method: PaymentMethod | None) -> None:
    if draft.amount_due > 0 and method is None:
        raise BillingError(
            BillingErrorCode.PAYMENT_REQUIRED,
            "A default payment method is needed to pay for this; add one first.",
            field="paymentMethodId",
        )


async def bill_subscription(
    session: AsyncSession,
    organization: Organization,
    subscription: Subscription,
    draft: InvoiceDraft,
    *,
    billing_reason: BillingReason,
    period_start: datetime,
    period_end: datetime,
    payment_method: PaymentMethod | None,
    payment_id: uuid.UUID | None,
    settings: Settings,
    now: datetime,
) -> tuple[Invoice, Payment | None]:
    """Create, finalize and charge an invoice for ``subscription``.

    A declined charge moves an ACTIVE (or TRIALING) subscription to PAST_DUE (through
    ``transition``; PAST_DUE and UNPAID stay as they are); a processor fault leaves the payment
    PENDING and the status as it is (the outcome is unknown).
    """
    require_payment_method(draft, payment_method)
    invoice = await create_invoice(
        session, organization, draft, subscription_id=subscription.id, billing_reason=billing_reason,
        period_start=period_start, period_end=period_end, now=now,
    )
    await finalize_invoice(session, invoice, now)
    gateway = gateway_for(payment_method.gateway, settings) if payment_method is not None else None
    payment = await charge_invoice(session, invoice, payment_method, gateway, now, payment_id=payment_id)
    in_good_standing = subscription.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
    if payment is not None and payment.status is PaymentStatus.FAILED and in_good_standing:
        subscription.status = transition(subscription.status, SubscriptionStatus.PAST_DUE)
    return invoice, payment


def is_live_conflict(exc: IntegrityError) -> bool:
    """Whether an insert lost the race for the one live subscription of an organization."""
    text = str(exc.orig)
    return "uq_subscriptions_one_live_per_organization" in text or "subscriptions.organization_id" in text


def already_subscribed() -> BillingError:
    return BillingError(BillingErrorCode.ALREADY_SUBSCRIBED,
                        "The organization already has a live subscription; change its plan instead.")
