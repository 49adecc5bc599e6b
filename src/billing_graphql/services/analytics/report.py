"""Revenue analytics for staff: every figure an aggregate computed by the database.

Four statements whatever the number of subscriptions or months (none loads rows into Python):

1. the state at the range's start (MRR, live subscriptions, paying organizations) from the
   revisions valid then;
2. the MRR movements of each month: each revision that began in the range beside the one
   before it (``LAG`` over the subscription's revisions, in ``valid_from`` then ``seq`` order: a
   revision closed the instant it began still counts as a movement), summed per month;
3. the money of each month (succeeded payments, succeeded refunds (those paying out credit notes
   included), failed payment attempts, bad debt: invoices marked uncollectible and still unpaid)
   and the outstanding amount of open invoices, in one ``UNION ALL``;
4. the open revisions (each subscription's state now) counted and summed per plan and status,
   beside the plans of the currency.

``domain.analytics`` defines each figure and carries the start state through the months. The compiled path's SQL
tier reads the four in one statement (``revenue_analytics_read``), with the same rules after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger, Boolean, Integer, String, and_, bindparam, case, cast, func, literal, literal_column, null, or_, select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.prepared import Compiled
from billing_graphql.db.models import Invoice, Payment, PaymentStatus, Plan, Refund
from billing_graphql.db.models.analytics import SubscriptionMrrRevision as Revision
from billing_graphql.domain.analytics import (
    CashFlow,
    MonthFigures,
    Movements,
    Range,
    Snapshot,
    analytics_range,
    month_figures,
)
from billing_graphql.domain.money import normalize_currency
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.analytics.sql import month_bucket, month_label

S = SubscriptionStatus
MRR_STATUS_VALUES = (S.ACTIVE, S.PAST_DUE)


@dataclass(frozen=True, slots=True)
class PlanBreakdown:
    plan: Plan | uuid.UUID  # its row (``revenue_analytics``), or its id (``revenue_analytics_read``)
    subscriptions: int
    mrr: int


@dataclass(frozen=True, slots=True)
class AnalyticsReport:
    currency: str
    mrr: int
    months: tuple[MonthFigures, ...]
    by_status: tuple[tuple[SubscriptionStatus, int], ...]
    by_plan: tuple[PlanBreakdown, ...]
    outstanding: int
    failed_payments_rate: object

    @property
    def arr(self) -> int:
        return self.mrr * 12


def _int(value: object) -> int:
    return int(value or 0)


def _valid_at(instant: datetime):
    """The revision in force just before ``instant`` (a month's end is the next one's start)."""
    return and_(Revision.valid_from < instant, or_(Revision.valid_to.is_(None), Revision.valid_to >= instant))


# The four statements are made once, over the bind parameters ``currency``, ``start`` and ``end`` (the range): building
# them and their cache keys was most of a report's CPU.
CURRENCY, START, END = bindparam("currency"), bindparam("start"), bindparam("end")

_START_STATE = select(
    func.coalesce(func.sum(Revision.mrr_minor), 0),
    func.count(case((Revision.status != S.CANCELED, 1))),
    func.count(case((Revision.mrr_minor > 0, 1))),
).where(Revision.currency == CURRENCY, _valid_at(START))


def _snapshot(row: Sequence[Any]) -> Snapshot:
    return Snapshot(mrr=_int(row[0]), live=_int(row[1]), paying=_int(row[2]))


async def _start_state(session: AsyncSession, values: dict) -> Snapshot:
    return _snapshot((await session.execute(_START_STATE, values)).one())


def _movements_statement():
    order = {"partition_by": Revision.subscription_id, "order_by": (Revision.valid_from, Revision.seq)}
    sequence = (
        select(
            Revision.valid_from, Revision.status, Revision.mrr_minor.label("mrr"),
            func.lag(Revision.status, type_=Revision.status.type).over(**order).label("before_status"),
            func.coalesce(func.lag(Revision.mrr_minor, type_=Revision.mrr_minor.type).over(**order), 0)
            .label("before_mrr"),
        )
        # The revisions of the range and the ones just before them (which end inside it).
        .where(Revision.currency == CURRENCY, Revision.valid_from < END,
               or_(Revision.valid_to.is_(None), Revision.valid_to >= START))
        .subquery()
    )
    mrr, before = sequence.c.mrr, sequence.c.before_mrr
    status, before_status = sequence.c.status, sequence.c.before_status

    def total(condition, value):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    bucket = month_bucket(sequence.c.valid_from)
    return (
        select(
            month_label(bucket),
            func.count(case((and_(before_status.is_(None), status != S.CANCELED), 1))),
            func.count(case((and_(status == S.CANCELED, before_status != S.CANCELED), 1))),
            total(and_(before == 0, mrr > 0), mrr),
            total(and_(before > 0, mrr > before), mrr - before),
            total(and_(mrr > 0, mrr < before), before - mrr),
            total(and_(before > 0, mrr == 0), before),
            func.count(case((and_(before_status == S.TRIALING, or_(*(status == value for value in MRR_STATUS_VALUES))),
                             1))),
            total(and_(before == 0, mrr > 0), 1) - total(and_(before > 0, mrr == 0), 1),
        )
        .where(sequence.c.valid_from >= START)
        .group_by(bucket)
    )


_MOVEMENTS = _movements_statement()


def _moved(rows: Iterable[Sequence[Any]]) -> dict[str, Movements]:
    return {row[0]: Movements(*(_int(value) for value in row[1:])) for row in rows}


def _money_statement():
    paid = Payment.status == PaymentStatus.SUCCEEDED
    failed = Payment.status == PaymentStatus.FAILED
    payment_month = month_bucket(Payment.created_at)
    refund_month = month_bucket(Refund.created_at)
    payments = (
        select(literal("payments").label("kind"), month_label(payment_month).label("month"),
               func.coalesce(func.sum(case((paid, Payment.amount), else_=0)), 0).label("amount"),
               func.count(case((paid, 1))).label("succeeded"), func.count(case((failed, 1))).label("failed"))
        .where(Payment.currency == CURRENCY, Payment.created_at >= START, Payment.created_at < END)
        .group_by(payment_month)
    )
    refunds = (
        select(literal("refunds"), month_label(refund_month), func.coalesce(func.sum(Refund.amount), 0), literal(0), literal(0))
        .where(Refund.currency == CURRENCY, Refund.status == PaymentStatus.SUCCEEDED,
               Refund.created_at >= START, Refund.created_at < END)
        .group_by(refund_month)
    )
    outstanding = (
        select(literal("outstanding"), null(),
               func.coalesce(func.sum(Invoice.total - Invoice.credit_applied - Invoice.amount_paid
                                        - Invoice.credited_against_due), 0),
               literal(0), literal(0))
        .where(Invoice.currency == CURRENCY, Invoice.status == InvoiceStatus.OPEN)
    )
    marked_month = month_bucket(Invoice.marked_uncollectible_at)
    bad_debt = (
        select(literal("uncollectible"), month_label(marked_month),
               func.coalesce(func.sum(Invoice.total - Invoice.credit_applied - Invoice.amount_paid
                                      - Invoice.credited_against_due), 0),
               literal(0), literal(0))
        .where(Invoice.currency == CURRENCY, Invoice.status == InvoiceStatus.UNCOLLECTIBLE,
               Invoice.marked_uncollectible_at >= START, Invoice.marked_uncollectible_at < END)
        .group_by(marked_month)
    )
    return union_all(payments, refunds, outstanding, bad_debt)


_MONEY = _money_statement()


def _cash(rows: Iterable[Sequence[Any]]) -> tuple[dict[str, CashFlow], int]:
    """Each month's ``CashFlow`` and the outstanding amount, of ``_MONEY``'s rows."""
    flows: dict[str, dict[str, int]] = {}
    owed = 0
    for kind, month, amount, succeeded, failures in rows:
        if kind == "outstanding":
            owed = _int(amount)
        elif kind == "payments":
            flows.setdefault(month, {}).update(payments=_int(amount), succeeded_payments=_int(succeeded),
                                               failed_payments=_int(failures))
        else:  # refunds, uncollectible
            flows.setdefault(month, {})[kind] = _int(amount)
    return {month: CashFlow(**flow) for month, flow in flows.items()}, owed


PLAN_ORDER = (Plan.sort_order, Plan.base_price_monthly, Plan.slug)


def _now_statement(*plan: Any):
    """The open revisions (one per subscription: its state now) counted and summed per plan and status, beside the
    currency's plans, in the plans' order: each row ``plan`` (the plan's row, or some of its columns), the status, the
    number of subscriptions and their MRR."""
    current = (
        select(Revision.plan_id, Revision.status, func.count().label("subscriptions"),
               func.sum(Revision.mrr_minor).label("mrr"))
        .where(Revision.valid_to.is_(None), Revision.currency == CURRENCY)
        .group_by(Revision.plan_id, Revision.status)
        .subquery()
    )
    return (
        select(*plan, current.c.status, current.c.subscriptions, current.c.mrr)
        .outerjoin(current, current.c.plan_id == Plan.id)
        .where(or_(Plan.currency == CURRENCY, current.c.plan_id.is_not(None)))
        .order_by(*PLAN_ORDER)
    )


_NOW = _now_statement(Plan)


def _plans_and_statuses(rows: Iterable[Sequence[Any]]) -> tuple[tuple[PlanBreakdown, ...], tuple[tuple[S, int], ...]]:
    """Live subscriptions and MRR per plan (the active plans, and the others with live subscriptions), and
    subscriptions per status (every status), of ``_now_statement``'s rows, each (plan id, the plan shown (its row,
    or its id), whether it is active, status, subscriptions, MRR)."""
    plans: dict[object, list] = {}
    statuses = dict.fromkeys(SubscriptionStatus, 0)
    for plan_id, plan, is_active, status, count, mrr in rows:
        entry = plans.setdefault(plan_id, [plan, is_active, 0, 0])
        if status is not None:
            statuses[status] += _int(count)
            entry[2] += _int(count) if status is not S.CANCELED else 0
            entry[3] += _int(mrr)
    by_plan = tuple(PlanBreakdown(plan, live, mrr) for plan, is_active, live, mrr in plans.values()
                    if is_active or live)
    return by_plan, tuple(statuses.items())


async def _now(session: AsyncSession, values: dict) -> tuple[tuple[PlanBreakdown, ...], tuple[tuple[S, int], ...]]:
    """Subscriptions per plan and status now, with their MRR (``_plans_and_statuses``), the plans' rows shown."""
    return _plans_and_statuses((plan.id, plan, plan.is_active, *rest) for plan, *rest in
                               (await session.execute(_NOW, values)))


def _report(currency: str, span: Range, start: Snapshot, moved: dict[str, Movements], cash: dict[str, CashFlow],
            owed: int, now: tuple[tuple[PlanBreakdown, ...], tuple[tuple[S, int], ...]]) -> AnalyticsReport:
    by_plan, by_status = now
    figures = month_figures(span, start, moved, cash)
    return AnalyticsReport(
        currency=currency,
        mrr=sum(row.mrr for row in by_plan),
        months=figures.months,
        by_status=by_status,
        by_plan=by_plan,
        outstanding=owed,
        failed_payments_rate=figures.failed_payments_rate,
    )


async def revenue_analytics(db: Database, *, first: date, last: date, currency: str, now: datetime) -> AnalyticsReport:
    """The figures of ``domain.analytics`` for the days ``first``..``last`` in ``currency`` (never
    converted). Raises VALIDATION for an unknown currency or a range of more than 120 months."""
    currency = normalize_currency(currency)
    span = analytics_range(first, last, now)
    async with db.read() as session:
        # An empty range runs the same statements; they find nothing in [start, start).
        values = {"currency": currency, "start": span.start, "end": span.end}
        start = await _start_state(session, values)
        moved = _moved((await session.execute(_MOVEMENTS, values)).all())
        cash, owed = _cash(await session.execute(_MONEY, values))
        current = await _now(session, values)
    return _report(currency, span, start, moved, cash, owed, current)


# The four statements' rows in one statement, for the compiled path's SQL tier (``graphql.analytics``), which writes
# the answer in one statement more from the figures: each statement's columns in their slots of one row layout (the
# others NULL), told apart by ``kind`` (``_MONEY``'s own kinds, "start", "movements", "now"); the plans' rows in their
# order by ``place`` instead of ``ORDER BY``, and by their id and whether they are active instead of their row.
_LAYOUT = {"kind": String(), "month": String(), "plan_id": Plan.id.type, "is_active": Boolean(),
           "status": Revision.status.type, "place": Integer(), **{f"n{index}": BigInteger() for index in range(8)}}


def _in_layout(statement: Any, kind: str | None, *slots: str) -> Any:
    """``statement`` selecting its columns in ``slots`` of ``_LAYOUT`` (and ``kind``, unless its first slot is it)."""
    given = dict(zip(slots, statement.selected_columns, strict=True))
    if kind is not None:
        given["kind"] = literal(kind, String())
    return statement.with_only_columns(*(given.get(name, cast(null(), type_)).label(name)
                                         for name, type_ in _LAYOUT.items()), maintain_column_froms=True)


_PLACED_NOW = _now_statement(Plan.id, Plan.is_active).order_by(None).add_columns(
    func.row_number().over(order_by=PLAN_ORDER))
_ONE_READ = Compiled(union_all(
    _in_layout(_START_STATE, "start", "n0", "n1", "n2"),
    _in_layout(_MOVEMENTS, "movements", "month", *(f"n{index}" for index in range(8))),
    *(_in_layout(part, None, "kind", "month", "n0", "n1", "n2") for part in _MONEY.selects),
    _in_layout(_PLACED_NOW, "now", "plan_id", "is_active", "status", "n0", "n1", "place"),
).order_by(literal_column("place")))


async def revenue_analytics_read(db: Database, *, first: date, last: date, currency: str,
                                 now: datetime) -> AnalyticsReport:
    """``revenue_analytics`` read in one statement on the driver's connection (``_ONE_READ``), each plan given by its
    id (``PlanBreakdown.plan``)."""
    currency = normalize_currency(currency)
    span = analytics_range(first, last, now)
    rows = await _ONE_READ.on(db.engine.dialect).values(db, {"currency": currency, "start": span.start,
                                                               "end": span.end})
    start, moved, money, plans = Snapshot(), [], [], []
    for kind, month, plan_id, is_active, status, _, *numbers in rows:
        if kind == "start":
            start = _snapshot(numbers)
        elif kind == "movements":
            moved.append((month, *numbers))
        elif kind == "now":
            plans.append((plan_id, plan_id, is_active, status, *numbers[:2]))
        else:
            money.append((kind, month, *numbers[:3]))
    cash, owed = _cash(money)
    return _report(currency, span, start, _moved(moved), cash, owed, _plans_and_statuses(plans))
