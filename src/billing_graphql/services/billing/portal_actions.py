"""What the billing portal's forms need beyond the mutations' services: the plans a subscription
can move to, and replacing the default card (add the new one as default, then remove the old)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import PaymentMethod, PaymentMethodType
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.money import Money
from billing_graphql.services.billing.portal import PortalSubscription, live_subscription
from billing_graphql.services.catalog.plans import list_plans
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.payments.payment_methods import NewPaymentMethod, remove_payment_method
from billing_graphql.services.payments.stripe_methods import add_payment_method


@dataclass(frozen=True, slots=True)
class ManageView:
    subscription: PortalSubscription | None
    plans: list[dict[str, Any]] = field(default_factory=list)  # the other active plans in its currency


async def load_manage_view(db: Database, organization_id: uuid.UUID) -> ManageView:
    async with db.read() as session:
        subscription = await live_subscription(session, organization_id)
    if subscription is None:
        return ManageView(subscription=None)
    plans = [
        {"id": str(plan.id), "name": plan.name, "price": Money(plan.base_price_monthly, plan.currency).format()}
        for plan in await list_plans(db, include_inactive=False, currency=subscription.currency)
        if plan.id != subscription.plan_id
    ]
    return ManageView(subscription=subscription, plans=plans)


async def replace_default_card(db: Database, gateways: GatewayRegistry, actor: Actor, *, token: str, label: str,
                               now: datetime) -> PaymentMethod:
    """Add ``token`` as the default card on the replaced card's gateway, exactly as
    ``addPaymentMethod`` adds it (for Stripe: attached to the organization's Stripe Customer,
    with Stripe's brand, last 4 and expiry), then remove the card it replaces."""
    async with db.read() as session:
        old = await session.scalar(select(PaymentMethod).where(PaymentMethod.organization_id == actor.organization_id,
                                                               PaymentMethod.is_default.is_(True)))
    gateway = old.gateway if old is not None else "sandbox"
    new = await add_payment_method(db, gateways, actor, NewPaymentMethod(
        gateway=gateway, gateway_payment_method_id=token.strip(), type=PaymentMethodType.CREDIT_CARD,
        label=label.strip(), is_default=True), now=now)
    if old is not None and old.id != new.id:
        await remove_payment_method(db, actor, payment_method_id=old.id, now=now)
    return new
