"""What the billing portal's pages read: one read session, a fixed number of statements.

``load_portal_data`` returns the organization's state as rows and plain values; the portal's view
models (``http.portal.views``) turn it into what each page shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    BillingDetails,
    Coupon,
    CreditNote,
    Invoice,
    Organization,
    PaymentMethod,
    Plan,
    Subscription,
)
from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.domain.language import language_of
from billing_graphql.domain.periods import Period
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.billing.invoicing import amount_due
from billing_graphql.services.platform.billing_details import value_of
from billing_graphql.services.subscriptions.pricing import attached_addons
from billing_graphql.services.usage.reading import MetricUse, usage_now

INVOICES_SHOWN = 50


class PortalOrganizationGone(Exception):
    """The link's organization no longer exists."""


@dataclass(frozen=True, slots=True)
class PortalData:
    organization: Organization
    subscription: Subscription | None
    plan: Plan | None
    pending_plan: Plan | None
    coupon: Coupon | None
    attached: list[tuple[int, Addon]]  # quantity, add-on
    invoices: list[Invoice]  # newest first, drafts left out
    open_invoices: list[tuple[Invoice, int]]  # OPEN ones with their amount due
    payment_methods: list[PaymentMethod]  # the default first
    plans: list[Plan] = field(default_factory=list)  # active plans in the subscription's currency
    addons: list[Addon] = field(default_factory=list)  # active add-ons in that currency
    usage: list[MetricUse] = field(default_factory=list)
    usage_period: Period | None = None
    billing_details: BillingDetailsValue = field(default_factory=BillingDetailsValue)
    credit_notes: list[CreditNote] = field(default_factory=list)  # newest first

    @property
    def default_method(self) -> PaymentMethod | None:
        return next((method for method in self.payment_methods if method.is_default), None)

    @property
    def currency(self) -> str:
        return self.plan.currency if self.plan is not None else self.organization.currency


async def documents_language(db: Database, organization_id: uuid.UUID) -> str:
    """The organization's documents' language (``BillingDetails.language``; en without details)."""
    async with db.read() as session:
        code = await session.scalar(select(BillingDetails.language).where(
            BillingDetails.organization_id == organization_id))
    return language_of(code).value


async def load_portal_data(db: Database, organization_id: uuid.UUID, now: datetime) -> PortalData:
    async with db.read() as session:
        organization = await session.get(Organization, organization_id)
        if organization is None:
            raise PortalOrganizationGone()
        subscription = await session.scalar(select(Subscription).where(
            Subscription.organization_id == organization_id, Subscription.status != SubscriptionStatus.CANCELED))
        plan = await session.get(Plan, subscription.plan_id) if subscription else None
        pending = (await session.get(Plan, subscription.pending_plan_id)
                   if subscription is not None and subscription.pending_plan_id else None)
        coupon = await session.get(Coupon, subscription.coupon_id) if subscription and subscription.coupon_id else None
        attached = ([(link.quantity, addon) for link, addon in await attached_addons(session, subscription.id)]
                    if subscription else [])
        invoices = list((await session.scalars(
            select(Invoice).where(Invoice.organization_id == organization_id, Invoice.status != InvoiceStatus.DRAFT)
            .order_by(Invoice.created_at.desc(), Invoice.id.desc()).limit(INVOICES_SHOWN))).all())
        methods = list((await session.scalars(
            select(PaymentMethod).where(PaymentMethod.organization_id == organization_id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id))).all())
        currency = plan.currency if plan is not None else organization.currency
        plans = list((await session.scalars(
            select(Plan).where(Plan.is_active.is_(True), Plan.currency == currency)
            .order_by(Plan.base_price_monthly, Plan.sort_order, Plan.name))).all())
        addons = list((await session.scalars(
            select(Addon).where(Addon.is_active.is_(True), Addon.currency == currency)
            .order_by(Addon.sort_order, Addon.name))).all())
        usage = await usage_now(session, organization_id, now)
        details = value_of(await session.get(BillingDetails, organization_id))
        credit_notes = list((await session.scalars(
            select(CreditNote).where(CreditNote.organization_id == organization_id)
            .order_by(CreditNote.created_at.desc(), CreditNote.id.desc()).limit(INVOICES_SHOWN))).all())
    open_invoices = [(invoice, amount_due(invoice)) for invoice in invoices if invoice.status is InvoiceStatus.OPEN]
    return PortalData(
        organization=organization, subscription=subscription, plan=plan, pending_plan=pending, coupon=coupon,
        attached=attached, invoices=invoices, open_invoices=open_invoices, payment_methods=methods, plans=plans,
        addons=addons, usage=usage.metrics, usage_period=usage.month, billing_details=details,
        credit_notes=credit_notes,
    )
