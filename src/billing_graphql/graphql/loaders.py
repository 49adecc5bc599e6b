"""Per-request DataLoaders; every batch opens its own session."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from billing_graphql.db.engine import Database
from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.graphql.platform.billing_details_loaders import billing_details_loader, invoice_buyer_loader
from billing_graphql.db.models import (
    Addon,
    Coupon,
    CouponPlan,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceItem,
    InvoiceLine,
    Metric,
    Organization,
    Payment,
    PaymentMethod,
    Plan,
    PlanCharge,
    PlanFeature,
    PlanLimit,
    Refund,
    Subscription,
    SubscriptionAddon,
    UsageCounter,
)


def _by_id_loader(db: Database, model: type) -> DataLoader[uuid.UUID, Any]:
    async def load(ids: Sequence[uuid.UUID]) -> list[Any]:
        async with db.read() as session:
            rows = (await session.scalars(select(model).where(model.id.in_(ids)))).all()
        found = {row.id: row for row in rows}
        return [found.get(key) for key in ids]

    return DataLoader(load_fn=load)


def _grouped_loader(
    db: Database, statement_for: Callable[[Sequence[uuid.UUID]], Any], key_of: Callable[[Any], uuid.UUID]
) -> DataLoader[uuid.UUID, list[Any]]:
    async def load(ids: Sequence[uuid.UUID]) -> list[list[Any]]:
        async with db.read() as session:
            rows = (await session.execute(statement_for(ids))).all()
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[key_of(row)].append(row)
        return [grouped.get(key, []) for key in ids]

    return DataLoader(load_fn=load)


def _agents_loader(db: Database) -> DataLoader[uuid.UUID, int | None]:
    """The ``agents`` gauge per organization (None where nothing was recorded)."""

    async def load(ids: Sequence[uuid.UUID]) -> list[int | None]:
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(UsageCounter.organization_id, UsageCounter.value)
                    .join(Metric, Metric.id == UsageCounter.metric_id)
                    .where(UsageCounter.organization_id.in_(ids), Metric.code == "agents",
                           UsageCounter.period_key == "current")
                )
            ).all()
        found = {organization_id: int(value) for organization_id, value in rows}
        return [found.get(key) for key in ids]

    return DataLoader(load_fn=load)


class Loaders:
    """Built for each request in the context getter, never shared between requests. Each loader is made
    the first time the request asks for it (most requests use one or two of them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def organization_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Organization)

    @cached_property
    def plan_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Plan)

    @cached_property
    def payment_method_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, PaymentMethod)

    @cached_property
    def limits_by_plan(self) -> DataLoader[uuid.UUID, list[Any]]:
        # (PlanLimit, Metric) rows per plan, in metric code order.
        return _grouped_loader(
            self.db,
            lambda ids: select(PlanLimit, Metric)
            .join(Metric, Metric.id == PlanLimit.metric_id)
            .where(PlanLimit.plan_id.in_(ids))
            .order_by(Metric.code),
            lambda row: row[0].plan_id,
        )

    @cached_property
    def features_by_plan(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(PlanFeature).where(PlanFeature.plan_id.in_(ids)).order_by(PlanFeature.key),
            lambda row: row[0].plan_id,
        )

    @cached_property
    def charges_by_plan(self) -> DataLoader[uuid.UUID, list[Any]]:
        # (PlanCharge, Metric) rows of each plan's current version, in their order.
        return _grouped_loader(
            self.db,
            lambda ids: select(PlanCharge, Metric)
            .join(Metric, Metric.id == PlanCharge.metric_id)
            .join(Plan, (Plan.id == PlanCharge.plan_id) & (Plan.version == PlanCharge.version))
            .where(PlanCharge.plan_id.in_(ids))
            .order_by(PlanCharge.position),
            lambda row: row[0].plan_id,
        )

    @cached_property
    def subscription_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Subscription)

    @cached_property
    def invoice_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Invoice)

    @cached_property
    def invoice_item_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, InvoiceItem)

    @cached_property
    def coupon_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Coupon)

    @cached_property
    def agents_by_organization(self) -> DataLoader[uuid.UUID, int | None]:
        return _agents_loader(self.db)

    @cached_property
    def addons_by_subscription(self) -> DataLoader[uuid.UUID, list[Any]]:
        # (SubscriptionAddon, Addon) rows per subscription, in the catalog's order.
        return _grouped_loader(
            self.db,
            lambda ids: select(SubscriptionAddon, Addon)
            .join(Addon, Addon.id == SubscriptionAddon.addon_id)
            .where(SubscriptionAddon.subscription_id.in_(ids))
            .order_by(Addon.sort_order, Addon.name, Addon.id),
            lambda row: row[0].subscription_id,
        )

    @cached_property
    def lines_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(InvoiceLine).where(InvoiceLine.invoice_id.in_(ids)).order_by(InvoiceLine.position),
            lambda row: row[0].invoice_id,
        )

    @cached_property
    def payments_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(Payment).where(Payment.invoice_id.in_(ids)).order_by(Payment.created_at, Payment.id),
            lambda row: row[0].invoice_id,
        )

    @cached_property
    def refunds_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(Refund).where(Refund.invoice_id.in_(ids)).order_by(Refund.created_at, Refund.id),
            lambda row: row[0].invoice_id,
        )

    @cached_property
    def credit_note_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, CreditNote)

    @cached_property
    def credit_notes_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(CreditNote).where(CreditNote.invoice_id.in_(ids))
            .order_by(CreditNote.created_at, CreditNote.number),
            lambda row: row[0].invoice_id,
        )

    @cached_property
    def lines_by_credit_note(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(CreditNoteLine).where(CreditNoteLine.credit_note_id.in_(ids))
            .order_by(CreditNoteLine.position),
            lambda row: row[0].credit_note_id,
        )

    @cached_property
    def refunds_by_credit_note(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(
            self.db,
            lambda ids: select(Refund).where(Refund.credit_note_id.in_(ids)).order_by(Refund.created_at, Refund.id),
            lambda row: row[0].credit_note_id,
        )

    @cached_property
    def addon_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, Addon)

    @cached_property
    def billing_details_by_organization(self) -> DataLoader[uuid.UUID, BillingDetailsValue]:
        return billing_details_loader(self.db)

    @cached_property
    def buyer_by_invoice(self) -> DataLoader[uuid.UUID, BillingDetailsValue | None]:
        return invoice_buyer_loader(self.db)

    @cached_property
    def plans_by_coupon(self) -> DataLoader[uuid.UUID, list[Any]]:
        # (coupon id, Plan) rows per coupon, in plan display order.
        return _grouped_loader(
            self.db,
            lambda ids: select(CouponPlan.coupon_id, Plan)
            .join(Plan, Plan.id == CouponPlan.plan_id)
            .where(CouponPlan.coupon_id.in_(ids))
            .order_by(Plan.sort_order, Plan.base_price_monthly, Plan.name, Plan.id),
            lambda row: row[0],
        )
