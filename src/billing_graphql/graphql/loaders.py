"""Per-request DataLoaders; every batch opens its own session."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from billing_graphql.db.engine import Database
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
    """Built for each request in the context getter, never shared between requests."""

    def __init__(self, db: Database) -> None:
        self.organization_by_id = _by_id_loader(db, Organization)
        self.plan_by_id = _by_id_loader(db, Plan)
        self.payment_method_by_id = _by_id_loader(db, PaymentMethod)
        # (PlanLimit, Metric) rows per plan, in metric code order.
        self.limits_by_plan = _grouped_loader(
            db,
            lambda ids: select(PlanLimit, Metric)
            .join(Metric, Metric.id == PlanLimit.metric_id)
            .where(PlanLimit.plan_id.in_(ids))
            .order_by(Metric.code),
            lambda row: row[0].plan_id,
        )
        self.features_by_plan = _grouped_loader(
            db,
            lambda ids: select(PlanFeature).where(PlanFeature.plan_id.in_(ids)).order_by(PlanFeature.key),
            lambda row: row[0].plan_id,
        )
        self.subscription_by_id = _by_id_loader(db, Subscription)
        self.invoice_by_id = _by_id_loader(db, Invoice)
        self.invoice_item_by_id = _by_id_loader(db, InvoiceItem)
        self.coupon_by_id = _by_id_loader(db, Coupon)
        self.agents_by_organization = _agents_loader(db)
        # (SubscriptionAddon, Addon) rows per subscription, in the catalog's order.
        self.addons_by_subscription = _grouped_loader(
            db,
            lambda ids: select(SubscriptionAddon, Addon)
            .join(Addon, Addon.id == SubscriptionAddon.addon_id)
            .where(SubscriptionAddon.subscription_id.in_(ids))
            .order_by(Addon.sort_order, Addon.name, Addon.id),
            lambda row: row[0].subscription_id,
        )
        self.lines_by_invoice = _grouped_loader(
            db,
            lambda ids: select(InvoiceLine).where(InvoiceLine.invoice_id.in_(ids)).order_by(InvoiceLine.position),
            lambda row: row[0].invoice_id,
        )
        self.payments_by_invoice = _grouped_loader(
            db,
            lambda ids: select(Payment).where(Payment.invoice_id.in_(ids)).order_by(Payment.created_at, Payment.id),
            lambda row: row[0].invoice_id,
        )
        self.refunds_by_invoice = _grouped_loader(
            db,
            lambda ids: select(Refund).where(Refund.invoice_id.in_(ids)).order_by(Refund.created_at, Refund.id),
            lambda row: row[0].invoice_id,
        )
        self.credit_note_by_id = _by_id_loader(db, CreditNote)
        self.credit_notes_by_invoice = _grouped_loader(
            db,
            lambda ids: select(CreditNote).where(CreditNote.invoice_id.in_(ids))
            .order_by(CreditNote.created_at, CreditNote.number),
            lambda row: row[0].invoice_id,
        )
        self.lines_by_credit_note = _grouped_loader(
            db,
            lambda ids: select(CreditNoteLine).where(CreditNoteLine.credit_note_id.in_(ids))
            .order_by(CreditNoteLine.position),
            lambda row: row[0].credit_note_id,
        )
        self.refunds_by_credit_note = _grouped_loader(
            db,
            lambda ids: select(Refund).where(Refund.credit_note_id.in_(ids)).order_by(Refund.created_at, Refund.id),
            lambda row: row[0].credit_note_id,
        )
        self.addon_by_id = _by_id_loader(db, Addon)
        self.billing_details_by_organization = billing_details_loader(db)
        self.buyer_by_invoice = invoice_buyer_loader(db)
        # (coupon id, Plan) rows per coupon, in plan display order.
        self.plans_by_coupon = _grouped_loader(
            db,
            lambda ids: select(CouponPlan.coupon_id, Plan)
            .join(Plan, Plan.id == CouponPlan.plan_id)
            .where(CouponPlan.coupon_id.in_(ids))
            .order_by(Plan.sort_order, Plan.base_price_monthly, Plan.name, Plan.id),
            lambda row: row[0],
        )
