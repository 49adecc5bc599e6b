"""Per-request DataLoaders; every batch opens its own session.

Their statements are made once, at import, over the bind parameter ``ids`` (``Batched``): building a statement
and its cache key for each batch cost 0.1-0.2 ms of CPU, a subscription page's seven batches about a millisecond."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import cache, cached_property
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from strawberry.dataloader import DataLoader

from billing_graphql.db.engine import Database
from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.services.catalog.charges import CHARGE_ORDER
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


def _in_ids(column: Any) -> Any:
    """``column IN (:ids)``, the batch's keys bound when the statement runs."""
    return column.in_(bindparam("ids", expanding=True))


class Batched:
    """A loader's statement over ``ids`` (``_in_ids``), made once: ``IN (:ids)`` for a batch of several keys,
    ``= :ids`` for a batch of one (most of them: SQLAlchemy renders an expanding parameter again at every run)."""

    def __init__(self, statement: Any) -> None:
        def one_key(element: Any) -> Any:
            right = getattr(element, "right", None)
            if isinstance(element, BinaryExpression) and isinstance(right, BindParameter) and right.key == "ids":
                return element.left == bindparam("ids")
            return None

        self.many = statement
        self.one = visitors.replacement_traverse(statement, {}, one_key)

    def statement(self, ids: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
        """The statement for these keys, and its parameters."""
        if len(ids) == 1:
            return self.one, {"ids": ids[0]}
        return self.many, {"ids": list(ids)}


@cache
def _by_id(model: type) -> Batched:
    return Batched(select(model).where(_in_ids(model.id)))


def _by_id_loader(db: Database, model: type) -> DataLoader[uuid.UUID, Any]:
    batched = _by_id(model)

    async def load(ids: Sequence[uuid.UUID]) -> list[Any]:
        async with db.read() as session:
            rows = (await session.scalars(*batched.statement(ids))).all()
        found = {row.id: row for row in rows}
        return [found.get(key) for key in ids]

    return DataLoader(load_fn=load)


def _grouped_loader(db: Database, batched: Batched,
                    key_of: Callable[[Any], uuid.UUID]) -> DataLoader[uuid.UUID, list[Any]]:
    """Rows of ``batched``'s statement grouped by ``key_of(row)``."""

    async def load(ids: Sequence[uuid.UUID]) -> list[list[Any]]:
        async with db.read() as session:
            rows = (await session.execute(*batched.statement(ids))).all()
        grouped: dict[uuid.UUID, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[key_of(row)].append(row)
        return [grouped.get(key, []) for key in ids]

    return DataLoader(load_fn=load)


_AGENTS = Batched(select(UsageCounter.organization_id, UsageCounter.value)
                  .join(Metric, Metric.id == UsageCounter.metric_id)
                  .where(_in_ids(UsageCounter.organization_id), Metric.code == "agents",
                         UsageCounter.period_key == "current"))


def _agents_loader(db: Database) -> DataLoader[uuid.UUID, int | None]:
    """The ``agents`` gauge per organization (None where nothing was recorded)."""

    async def load(ids: Sequence[uuid.UUID]) -> list[int | None]:
        async with db.read() as session:
            rows = (await session.execute(*_AGENTS.statement(ids))).all()
        found = {organization_id: int(value) for organization_id, value in rows}
        return [found.get(key) for key in ids]

    return DataLoader(load_fn=load)


# (PlanLimit, Metric) rows per plan, in metric code order.
_LIMITS_BY_PLAN = Batched(select(PlanLimit, Metric).join(Metric, Metric.id == PlanLimit.metric_id)
                          .where(_in_ids(PlanLimit.plan_id)).order_by(Metric.code))
_FEATURES_BY_PLAN = Batched(select(PlanFeature).where(_in_ids(PlanFeature.plan_id)).order_by(PlanFeature.key))
# (PlanCharge, Metric) rows of each plan's current version, in their order (``CHARGE_ORDER``).
_CHARGES_BY_PLAN = Batched(select(PlanCharge, Metric).join(Metric, Metric.id == PlanCharge.metric_id)
                           .join(Plan, (Plan.id == PlanCharge.plan_id) & (Plan.version == PlanCharge.version))
                           .where(_in_ids(PlanCharge.plan_id)).order_by(*CHARGE_ORDER))
# (SubscriptionAddon, Addon) rows per subscription, in the catalog's order.
_ADDONS_BY_SUBSCRIPTION = Batched(select(SubscriptionAddon, Addon).join(Addon, Addon.id == SubscriptionAddon.addon_id)
                                  .where(_in_ids(SubscriptionAddon.subscription_id))
                                  .order_by(Addon.sort_order, Addon.name, Addon.id))
_LINES_BY_INVOICE = Batched(select(InvoiceLine).where(_in_ids(InvoiceLine.invoice_id)).order_by(InvoiceLine.position))
_PAYMENTS_BY_INVOICE = Batched(select(Payment).where(_in_ids(Payment.invoice_id))
                               .order_by(Payment.created_at, Payment.id))
_REFUNDS_BY_INVOICE = Batched(select(Refund).where(_in_ids(Refund.invoice_id)).order_by(Refund.created_at, Refund.id))
_CREDIT_NOTES_BY_INVOICE = Batched(select(CreditNote).where(_in_ids(CreditNote.invoice_id))
                                   .order_by(CreditNote.created_at, CreditNote.number))
_LINES_BY_CREDIT_NOTE = Batched(select(CreditNoteLine).where(_in_ids(CreditNoteLine.credit_note_id))
                                .order_by(CreditNoteLine.position))
_REFUNDS_BY_CREDIT_NOTE = Batched(select(Refund).where(_in_ids(Refund.credit_note_id))
                                  .order_by(Refund.created_at, Refund.id))
# (coupon id, Plan) rows per coupon, in plan display order.
_PLANS_BY_COUPON = Batched(select(CouponPlan.coupon_id, Plan).join(Plan, Plan.id == CouponPlan.plan_id)
                           .where(_in_ids(CouponPlan.coupon_id))
                           .order_by(Plan.sort_order, Plan.base_price_monthly, Plan.name, Plan.id))


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
        return _grouped_loader(self.db, _LIMITS_BY_PLAN, lambda row: row[0].plan_id)

    @cached_property
    def features_by_plan(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _FEATURES_BY_PLAN, lambda row: row[0].plan_id)

    @cached_property
    def charges_by_plan(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _CHARGES_BY_PLAN, lambda row: row[0].plan_id)

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
        return _grouped_loader(self.db, _ADDONS_BY_SUBSCRIPTION, lambda row: row[0].subscription_id)

    @cached_property
    def lines_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _LINES_BY_INVOICE, lambda row: row[0].invoice_id)

    @cached_property
    def payments_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _PAYMENTS_BY_INVOICE, lambda row: row[0].invoice_id)

    @cached_property
    def refunds_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _REFUNDS_BY_INVOICE, lambda row: row[0].invoice_id)

    @cached_property
    def credit_note_by_id(self) -> DataLoader[uuid.UUID, Any]:
        return _by_id_loader(self.db, CreditNote)

    @cached_property
    def credit_notes_by_invoice(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _CREDIT_NOTES_BY_INVOICE, lambda row: row[0].invoice_id)

    @cached_property
    def lines_by_credit_note(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _LINES_BY_CREDIT_NOTE, lambda row: row[0].credit_note_id)

    @cached_property
    def refunds_by_credit_note(self) -> DataLoader[uuid.UUID, list[Any]]:
        return _grouped_loader(self.db, _REFUNDS_BY_CREDIT_NOTE, lambda row: row[0].credit_note_id)

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
        return _grouped_loader(self.db, _PLANS_BY_COUPON, lambda row: row[0])
