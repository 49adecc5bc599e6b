"""Payment methods of an organization: add, make default, remove, list.

Rules:
- A method holds the processor's token, never a card number: a token, label or brand that
  looks like one (``domain.cards``) is a VALIDATION error on that field, and the value is
  neither stored nor echoed in the message.
- Exactly one default per organization: the first method becomes the default; making one the
  default unsets the others first, then sets it, in one transaction (the partial unique index
  ``uq_payment_methods_one_default`` never sees two).
- Removing the default while a subscription is live and other methods exist is refused: the
  caller makes another one the default first (none is promoted silently). Without a live
  subscription the default may go; then no method is default until one is set or added.
- Every change takes the organization's lock and writes an audit row and an outbox event.
"""

from __future__ import annotations

from typing import Any

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database, lock_organization
from billing_graphql.db.models import PaymentMethod, PaymentMethodType, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.cards import contains_card_number
from billing_graphql.domain.errors import BillingError, BillingErrorCode, not_found, validation
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.gateways import SavedMethod
from billing_graphql.services.platform.audit import emit_event, record_audit, record_change, snapshot
from billing_graphql.services.webhooks.objects import event_data

SUPPORTED_GATEWAYS = ("sandbox", "razorpay", "stripe")
MAX_TOKEN_LENGTH = 200
MAX_LABEL_LENGTH = 200
MAX_BRAND_LENGTH = 32
MIN_EXP_YEAR = 2000
MAX_EXP_YEAR = 2100

_AUDIT_FIELDS = ("id", "gateway", "type", "label", "brand", "last4", "exp_month", "exp_year", "is_default")


@dataclass(frozen=True, slots=True)
class NewPaymentMethod:
    """The input of ``add_payment_method``, as the caller gave it."""

    gateway: str
    gateway_payment_method_id: str
    type: PaymentMethodType
    label: str = ""
    is_default: bool = False
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


def organization_of(actor: Actor) -> uuid.UUID:
    if actor.organization_id is None:
        # Only OWNER/ADMIN reach here through the API; a caller without an organization has
        # no payment methods to manage.
        raise not_found("Organization", None)
    return actor.organization_id


def _no_card_number(value: str | None, field: str) -> None:
    if contains_card_number(value):
        raise validation(
            "This looks like a card number. Never send card numbers: pass the token your "
            "payment processor returned instead.",
            field,
        )


def clean_new_payment_method(data: NewPaymentMethod, now: datetime) -> NewPaymentMethod:
    """Validate and normalize the input; raise VALIDATION naming the field."""
    gateway = data.gateway.strip().lower()
    if gateway not in SUPPORTED_GATEWAYS:
        raise validation(f"Unknown gateway; use one of {', '.join(SUPPORTED_GATEWAYS)}.", "gateway")
    token = data.gateway_payment_method_id.strip()
    _no_card_number(token, "gatewayPaymentMethodId")
    if not token:
        raise validation("The gateway's payment method id is required.", "gatewayPaymentMethodId")
    if len(token) > MAX_TOKEN_LENGTH or any(char.isspace() for char in token):
        raise validation(
            f"The gateway's payment method id is one word of at most {MAX_TOKEN_LENGTH} characters.",
            "gatewayPaymentMethodId",
        )
    label = data.label.strip()
    _no_card_number(label, "label")
    if len(label) > MAX_LABEL_LENGTH:
        raise validation(f"Label is at most {MAX_LABEL_LENGTH} characters.", "label")
    brand = data.brand.strip() if data.brand is not None else None
    _no_card_number(brand, "brand")
    if brand is not None and len(brand) > MAX_BRAND_LENGTH:
        raise validation(f"Brand is at most {MAX_BRAND_LENGTH} characters.", "brand")
    brand = brand or None
    last4 = data.last4.strip() if data.last4 is not None else None
    if last4 is not None and (len(last4) != 4 or not last4.isascii() or not last4.isdigit()):
        raise validation("last4 is exactly 4 digits.", "last4")
    exp_month, exp_year = data.exp_month, data.exp_year
    if (exp_month is None) != (exp_year is None):
        raise validation("Give both expMonth and expYear, or neither.", "expMonth" if exp_month is None else "expYear")
    if exp_month is not None and not 1 <= exp_month <= 12:
        raise validation("expMonth is between 1 and 12.", "expMonth")
    if exp_year is not None and not MIN_EXP_YEAR <= exp_year <= MAX_EXP_YEAR:
        raise validation(f"expYear is a four-digit year ({MIN_EXP_YEAR}..{MAX_EXP_YEAR}).", "expYear")
    if exp_year is not None and exp_month is not None and (exp_year, exp_month) < (now.year, now.month):
        # A card is valid through the last day of its expiry month.
        raise validation("This card has expired.", "expYear")
    return replace(data, gateway=gateway, gateway_payment_method_id=token, label=label, brand=brand, last4=last4)


async def _unset_default(session: AsyncSession, organization_id: uuid.UUID) -> None:
    await session.execute(
        update(PaymentMethod)
        .where(PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )


async def _has_live_subscription(session: AsyncSession, organization_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Subscription.id)
        .where(
            Subscription.organization_id == organization_id,
            Subscription.status != SubscriptionStatus.CANCELED,
        )
        .limit(1)
    )
    return found is not None


@asynccontextmanager
async def _method_change(
    db: Database, actor: Actor, payment_method_id: uuid.UUID
) -> AsyncIterator[tuple[AsyncSession, PaymentMethod]]:
    """A change to one of the caller's methods, in one transaction: the organization's lock
    first, then the method (another organization's is NOT_FOUND)."""
    organization_id = organization_of(actor)
    async with db.write() as session:
        await lock_organization(session, organization_id)
        method = await session.scalar(
            select(PaymentMethod)
            .where(PaymentMethod.id == payment_method_id, PaymentMethod.organization_id == organization_id)
        )
        if method is None:
            raise not_found("Payment method")
        yield session, method


def payment_methods_statement(organization_id: uuid.UUID) -> Any:
    """An organization's methods (``organization_of`` the caller): the default first, then oldest first."""
    return (select(PaymentMethod)
            .where(PaymentMethod.organization_id == organization_id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id))


async def add_payment_method(db: Database, actor: Actor, data: NewPaymentMethod, *, now: datetime) -> PaymentMethod:
    organization_id = organization_of(actor)
    data = clean_new_payment_method(data, now)
    async with db.write() as session:
        await lock_organization(session, organization_id)
        duplicate = await session.scalar(
            select(PaymentMethod.id).where(
                PaymentMethod.organization_id == organization_id,
                PaymentMethod.gateway == data.gateway,
                PaymentMethod.gateway_payment_method_id == data.gateway_payment_method_id,
            )
        )
        if duplicate is not None:
            raise BillingError(
                BillingErrorCode.ALREADY_EXISTS,
                "This payment method is already saved.",
                field="gatewayPaymentMethodId",
            )
        has_default = await session.scalar(
            select(func.count())
            .select_from(PaymentMethod)
            .where(PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True))
        )
        make_default = data.is_default or not has_default
        if make_default and has_default:
            await _unset_default(session, organization_id)
        method = PaymentMethod.from_fields(data, id=uuid.uuid4(), organization_id=organization_id,
                                           is_default=make_default, created_at=now)
        session.add(method)
        await session.flush()
        after = snapshot(method, *_AUDIT_FIELDS)
        record_change(session, actor=actor, action="payment_method.added", object_type="PaymentMethod",
                      object_id=method.id, organization_id=organization_id, now=now, after=after, subject=method)
    return method


async def keep_checkout_method(
    session: AsyncSession, actor: Actor | None, *, organization_id: uuid.UUID, gateway: str, saved: SavedMethod,
    now: datetime,
) -> PaymentMethod | None:
    """Save the method that paid a checkout, in the caller's locked transaction: the default when
    the organization has none. The one already saved with that token is reused. A token the rules
    refuse (``clean_new_payment_method``) is not saved: None."""
    try:
        data = clean_new_payment_method(NewPaymentMethod(
            gateway=gateway, gateway_payment_method_id=saved.token, type=PaymentMethodType(saved.type),
            label=saved.label[:MAX_LABEL_LENGTH], brand=saved.brand, last4=saved.last4), now)
    except (BillingError, ValueError):
        return None
    method = await session.scalar(select(PaymentMethod).where(
        PaymentMethod.organization_id == organization_id, PaymentMethod.gateway == data.gateway,
        PaymentMethod.gateway_payment_method_id == data.gateway_payment_method_id))
    has_default = await session.scalar(select(PaymentMethod.id).where(
        PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True)).limit(1))
    if method is None:
        method = PaymentMethod.from_fields(data, id=uuid.uuid4(), organization_id=organization_id,
                                           is_default=has_default is None, created_at=now)
        session.add(method)
        await session.flush()
        record_change(session, actor=actor, action="payment_method.added", object_type="PaymentMethod",
                      object_id=method.id, organization_id=organization_id, now=now,
                      after=snapshot(method, *_AUDIT_FIELDS), subject=method)
    elif has_default is None:
        method.is_default = True
        await session.flush()
        record_audit(session, actor=actor, action="payment_method.default_set", object_type="PaymentMethod",
                     object_id=method.id, organization_id=organization_id, now=now,
                     before={"default_id": None}, after={"default_id": str(method.id)})
    return method


async def set_default_payment_method(
    db: Database, actor: Actor, *, payment_method_id: uuid.UUID, now: datetime
) -> PaymentMethod:
    async with _method_change(db, actor, payment_method_id) as (session, method):
        if method.is_default:
            return method
        organization_id = method.organization_id
        previous = await session.scalar(
            select(PaymentMethod.id).where(
                PaymentMethod.organization_id == organization_id, PaymentMethod.is_default.is_(True)
            )
        )
        # Unset first, then set: the partial unique index never sees two defaults.
        await _unset_default(session, organization_id)
        method.is_default = True
        await session.flush()
        record_audit(session, actor=actor, action="payment_method.default_set", object_type="PaymentMethod",
                     object_id=method.id, organization_id=organization_id, now=now,
                     before={"default_id": str(previous) if previous else None}, after={"default_id": str(method.id)})
        emit_event(session, event_type="payment_method.default_changed", organization_id=organization_id,
                   payload=event_data("PaymentMethod", method, ids={"previous_default_id": "PaymentMethod"},
                                      previous_default_id=previous), now=now)
    return method


async def remove_payment_method(
    db: Database, actor: Actor, *, payment_method_id: uuid.UUID, now: datetime
) -> PaymentMethod:
    """Delete a method; returns the removed row (detached)."""
    async with _method_change(db, actor, payment_method_id) as (session, method):
        organization_id = method.organization_id
        if method.is_default:
            others = await session.scalar(
                select(func.count())
                .select_from(PaymentMethod)
                .where(PaymentMethod.organization_id == organization_id, PaymentMethod.id != method.id)
            )
            if others and await _has_live_subscription(session, organization_id):
                raise validation(
                    "This is the default payment method of a live subscription. Make another "
                    "payment method the default first, then remove this one.",
                    "id",
                )
        before = snapshot(method, *_AUDIT_FIELDS)
        await session.delete(method)
        await session.flush()
        record_change(session, actor=actor, action="payment_method.removed", object_type="PaymentMethod",
                      object_id=method.id, organization_id=organization_id, now=now, before=before, subject=method)
    return method
