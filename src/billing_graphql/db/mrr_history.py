"""Keeps ``subscription_mrr_revisions`` in step with the subscriptions, in every transaction.

Session listeners (registered for every ``Session`` when the models are imported): after each
flush, note what it changed: a Subscription inserted or with a changed plan, status, billing
period, agent count or coupon; a SubscriptionAddon inserted, changed or deleted; a Plan or Addon
whose prices changed (then every live subscription on it). Before the commit, read the noted
subscriptions' state in one SELECT, price each with ``domain.analytics.monthly_recurring_revenue``
and, where MRR, status, plan or currency differ from the open revision, close that revision and
open a new one at the instant of the change, in the same transaction. No service has to remember
to write history; a transaction that changed none of these costs nothing more.

The instant of a change is the latest final ``updated_at`` of the changed rows (services set it
to their clock, the test clock included) or ``session.info["now"]`` (set by the unit of work),
else the wall clock; never before the open revision began (history only moves forward). A
second change at the instant the open revision began rewrites it in place, except a churn (to
CANCELED, or from some MRR to none): that closes the open revision with no length and opens the
next with ``seq + 1``, so a subscription canceled the moment it started is both new and churned.

Seats are the organization's ``agents`` gauge (``domain.proration.billed_agents``: the gauge,
else the subscription's ``agent_count``), as the next renewal bills them: a change of the gauge
(``note_gauge``; the ORM's ``UsageCounter`` rows of period key ``current`` are noted by the
listener, ingestion's upserts call it) revises the MRR of the organization's live subscription.

Bulk ``UPDATE subscriptions`` statements bypass flushes: change subscriptions through the ORM, or
say what such a statement changed with ``note_subscriptions`` (the billing run's batch).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, event, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.sql.expression import bindparam

from billing_graphql.db.models.analytics import SubscriptionMrrRevision
from billing_graphql.db.models.catalog import Addon, AddonUnit, Coupon, Metric, Plan, PlanVersion
from billing_graphql.db.models.subscriptions import Subscription, SubscriptionAddon
from billing_graphql.db.models.usage import UsageCounter
from billing_graphql.domain.analytics import monthly_recurring_revenue
from billing_graphql.domain.invoices import Discount, DiscountKind
from billing_graphql.domain.proration import AddonPrice, PlanPrice, Recurring, billed_agents
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.domain.usage import GAUGE_KEY

SUBSCRIPTION_ATTRIBUTES = ("plan_id", "status", "billing_period", "agent_count", "coupon_id",
                           "coupon_periods_remaining", "plan_version", "pending_plan_version")
ADDON_ATTRIBUTES = ("addon_id", "quantity")
PLAN_PRICE_ATTRIBUTES = ("currency", "base_price_monthly", "base_price_annual", "per_agent_price", "included_agents")
ADDON_PRICE_ATTRIBUTES = ("price_monthly", "price_annual", "unit")
CHUNK = 500

_s = Subscription.__table__
_p = Plan.__table__
_v = PlanVersion.__table__
_c = Coupon.__table__
_sa = SubscriptionAddon.__table__
_a = Addon.__table__
_r = SubscriptionMrrRevision.__table__
_u = UsageCounter.__table__
_m = Metric.__table__
SEATS_METRIC = "agents"


@dataclass(slots=True)
class Touched:
    """What changed: subscriptions (with the instant), repriced plans and add-ons, and the
    organizations whose gauges changed."""

    subscriptions: dict[uuid.UUID, datetime | None]
    plans: dict[uuid.UUID, datetime | None]
    addons: dict[uuid.UUID, datetime | None]
    organizations: dict[uuid.UUID, datetime | None] = field(default_factory=dict)


@dataclass(slots=True)
class Noted:
    """The rows the flushes of one transaction changed, kept until it commits (their final
    ``updated_at`` is the instant of the change)."""

    subscriptions: dict[uuid.UUID, list[object]] = field(default_factory=dict)
    plans: dict[uuid.UUID, Plan] = field(default_factory=dict)
    addons: dict[uuid.UUID, Addon] = field(default_factory=dict)
    organizations: dict[uuid.UUID, datetime | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.subscriptions or self.plans or self.addons or self.organizations)

    def note(self, subscription_id: uuid.UUID | None, row: object | None) -> None:
        if subscription_id is not None:
            rows = self.subscriptions.setdefault(subscription_id, [])
            if row is not None:
                rows.append(row)

    def resolve(self, session: Session, now: datetime | None) -> Touched:
        """The instant of each change: the latest ``updated_at`` of the rows changed, and of the
        subscription itself when the session holds it (a deleted add-on has no instant of its own)."""

        def latest(rows: Iterable[object]) -> datetime | None:
            instants = [row.updated_at for row in rows if getattr(row, "updated_at", None) is not None]
            instants += [now] if now is not None else []
            return max(instants, default=None)

        def held(subscription_id: uuid.UUID) -> list[object]:
            row = session.identity_map.get(session.identity_key(Subscription, subscription_id))
            return [row] if row is not None else []

        return Touched(
            {key: latest(rows + held(key)) for key, rows in self.subscriptions.items()},
            {key: latest([row]) for key, row in self.plans.items()},
            {key: latest([row]) for key, row in self.addons.items()},
            {key: max(filter(None, (instant, now)), default=None) for key, instant in self.organizations.items()},
        )


def _changed(instance: object, attributes: Iterable[str]) -> bool:
    return any(get_history(instance, name).has_changes() for name in attributes)


def note_flush(session: Session, noted: Noted) -> None:
    """Note what a flush changed (run after it, while the attributes' history is still there)."""
    for instance in session.new:
        if isinstance(instance, Subscription):
            noted.note(instance.id, instance)
        elif isinstance(instance, SubscriptionAddon):
            noted.note(instance.subscription_id, instance)
        elif isinstance(instance, UsageCounter) and instance.period_key == GAUGE_KEY:
            _note_organization(noted, instance.organization_id, instance.updated_at)
    for instance in session.dirty:
        if isinstance(instance, Subscription) and _changed(instance, SUBSCRIPTION_ATTRIBUTES):
            noted.note(instance.id, instance)
        elif isinstance(instance, SubscriptionAddon) and _changed(instance, ADDON_ATTRIBUTES):
            noted.note(instance.subscription_id, instance)
        elif isinstance(instance, Plan) and _changed(instance, PLAN_PRICE_ATTRIBUTES):
            noted.plans[instance.id] = instance
        elif isinstance(instance, Addon) and _changed(instance, ADDON_PRICE_ATTRIBUTES):
            noted.addons[instance.id] = instance
        elif (isinstance(instance, UsageCounter) and instance.period_key == GAUGE_KEY
              and _changed(instance, ("value",))):
            _note_organization(noted, instance.organization_id, instance.updated_at)
    for instance in session.deleted:
        if isinstance(instance, SubscriptionAddon):
            noted.note(instance.subscription_id, None)


def _note_organization(noted: Noted, organization_id: uuid.UUID, instant: datetime | None) -> None:
    if instant is not None or organization_id not in noted.organizations:
        noted.organizations[organization_id] = instant


def note_gauge(session, organization_id: uuid.UUID, instant: datetime) -> None:
    """A gauge of the organization changed at ``instant`` outside the ORM (ingestion's upserts):
    its live subscription's MRR is revised at commit. ``session`` is a Session or AsyncSession."""
    info = session.info
    noted = info.get(NOTED) or Noted()
    _note_organization(noted, organization_id, instant)
    info[NOTED] = noted


def note_subscriptions(session, changed: Iterable[tuple[object, Iterable[str]]]) -> None:
    """Subscriptions written outside the ORM's flush (one bulk UPDATE), each with the columns it changed: those
    whose MRR inputs changed are revised at commit, as the flush listener would have noted them."""
    info = session.info
    noted = info.get(NOTED) or Noted()
    for subscription, columns in changed:
        if not set(columns).isdisjoint(SUBSCRIPTION_ATTRIBUTES):
            noted.note(subscription.id, subscription)
    info[NOTED] = noted


@dataclass(slots=True)
class _State:
    organization_id: uuid.UUID
    plan_id: uuid.UUID
    currency: str
    status: SubscriptionStatus
    recurring: Recurring
    discount: Discount | None
    open_id: uuid.UUID | None
    open_key: tuple | None
    open_from: datetime | None

    @property
    def mrr(self) -> int:
        return monthly_recurring_revenue(self.recurring, self.status, self.discount)

    @property
    def key(self) -> tuple:
        return (self.status, self.plan_id, self.currency, self.mrr)


def _discount(row) -> Discount | None:
    running = row.coupon_id is not None and (row.coupon_periods_remaining is None or row.coupon_periods_remaining > 0)
    if not running or row.discount_type is None:
        return None
    return Discount(DiscountKind(row.discount_type.value), percent_off=row.percent_off, amount_off=row.amount_off,
                    currency=row.coupon_currency)


def _select_states(connection: Connection, condition) -> dict[uuid.UUID, _State]:
    addons = _sa.join(_a, _a.c.id == _sa.c.addon_id)
    seats = (select(_u.c.value).join(_m, _m.c.id == _u.c.metric_id)
             .where(_u.c.organization_id == _s.c.organization_id, _u.c.period_key == GAUGE_KEY,
                    _m.c.code == SEATS_METRIC)
             .limit(1).scalar_subquery())
    statement = (
        select(
            _s.c.id, _s.c.organization_id, _s.c.plan_id, _s.c.status, _s.c.billing_period, _s.c.agent_count,
            seats.label("seats"),
            _s.c.coupon_id, _s.c.coupon_periods_remaining,
            _p.c.name, _p.c.currency,
            # The prices of the version the next renewal bills (domain.plan_versions): a frozen
            # plan_versions row, else the plan row (its current version).
            func.coalesce(_v.c.base_price_monthly, _p.c.base_price_monthly).label("base_price_monthly"),
            func.coalesce(_v.c.base_price_annual, _p.c.base_price_annual).label("base_price_annual"),
            func.coalesce(_v.c.per_agent_price, _p.c.per_agent_price).label("per_agent_price"),
            _p.c.included_agents,
            _c.c.discount_type, _c.c.percent_off, _c.c.amount_off, _c.c.currency.label("coupon_currency"),
            _r.c.id.label("open_id"), _r.c.status.label("open_status"), _r.c.plan_id.label("open_plan_id"),
            _r.c.currency.label("open_currency"), _r.c.mrr_minor.label("open_mrr"),
            _r.c.valid_from.label("open_from"),
            _sa.c.quantity, _a.c.name.label("addon_name"), _a.c.price_monthly, _a.c.price_annual, _a.c.unit,
        )
        .select_from(
            _s.join(_p, _p.c.id == _s.c.plan_id)
            .outerjoin(_v, and_(_v.c.plan_id == _s.c.plan_id,
                                _v.c.number == func.coalesce(_s.c.pending_plan_version, _s.c.plan_version)))
            .outerjoin(_c, _c.c.id == _s.c.coupon_id)
            .outerjoin(_r, and_(_r.c.subscription_id == _s.c.id, _r.c.valid_to.is_(None)))
            .outerjoin(addons, _sa.c.subscription_id == _s.c.id)
        )
        .where(condition)
    )
    rows: dict[uuid.UUID, tuple] = {}
    addon_prices: dict[uuid.UUID, list[AddonPrice]] = {}
    for row in connection.execute(statement):
        rows.setdefault(row.id, row)
        if row.quantity is not None:
            addon_prices.setdefault(row.id, []).append(
                AddonPrice(name=row.addon_name, monthly=row.price_monthly, annual=row.price_annual,
                           quantity=row.quantity, per_agent=row.unit is AddonUnit.PER_AGENT)
            )
    states: dict[uuid.UUID, _State] = {}
    for subscription_id, row in rows.items():
        plan = PlanPrice(name=row.name, currency=row.currency, base_monthly=row.base_price_monthly,
                         base_annual=row.base_price_annual, per_agent=row.per_agent_price,
                         included_agents=row.included_agents)
        agents = billed_agents(None if row.seats is None else int(row.seats), row.agent_count)
        recurring = Recurring(plan=plan, billing_period=row.billing_period, agents=agents,
                              addons=tuple(addon_prices.get(subscription_id, ())))
        states[subscription_id] = _State(
            organization_id=row.organization_id, plan_id=row.plan_id, currency=row.currency, status=row.status,
            recurring=recurring, discount=_discount(row), open_id=row.open_id,
            open_key=(row.open_status, row.open_plan_id, row.open_currency, row.open_mrr) if row.open_id else None,
            open_from=row.open_from,
        )
    return states


def _conditions(found: Touched) -> list:
    live = _s.c.status != SubscriptionStatus.CANCELED
    conditions = []
    ids = list(found.subscriptions)
    conditions += [_s.c.id.in_(ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)]
    if found.plans:
        conditions.append(and_(live, _s.c.plan_id.in_(list(found.plans))))
    if found.addons:
        with_addon = select(_sa.c.subscription_id).where(_sa.c.addon_id.in_(list(found.addons)))
        conditions.append(and_(live, _s.c.id.in_(with_addon)))
    organizations = list(found.organizations)
    conditions += [and_(live, _s.c.organization_id.in_(organizations[i:i + CHUNK]))
                   for i in range(0, len(organizations), CHUNK)]
    return conditions


def _churn(before: tuple, after: tuple) -> bool:
    """(status, plan, currency, MRR) ``before`` -> ``after`` loses the subscription or its MRR."""
    canceled = after[0] is SubscriptionStatus.CANCELED and before[0] is not SubscriptionStatus.CANCELED
    return canceled or (before[3] > 0 and after[3] == 0)


def record_revisions(connection: Connection, found: Touched, now: datetime) -> None:
    """Write the revisions the changes in ``found`` call for (see the module docstring)."""
    conditions = _conditions(found)
    states: dict[uuid.UUID, _State] = {}
    for start in range(0, len(conditions), 4):
        states.update(_select_states(connection, or_(*conditions[start:start + 4])))
    closes: list[dict] = []
    rewrites: list[dict] = []
    inserts: list[dict] = []
    later: list[dict] = []  # revisions of an instant that has one already (seq > 0)
    for subscription_id, state in states.items():
        if state.key == state.open_key:
            continue
        when = (found.subscriptions.get(subscription_id) or found.plans.get(state.plan_id)
                or found.organizations.get(state.organization_id)
                or max((instant for instant in found.addons.values() if instant), default=None) or now)
        values = dict(organization_id=state.organization_id, plan_id=state.plan_id, currency=state.currency,
                      status=state.status, mrr_minor=state.mrr)
        if state.open_id is not None and when <= state.open_from:
            if not _churn(state.open_key, state.key):
                rewrites.append(dict(values, revision_id=state.open_id))
                continue
            closes.append({"revision_id": state.open_id, "valid_to": state.open_from})
            # (seq is read only here: the migration that backfills revisions predates the column)
            seq = connection.scalar(select(_r.c.seq).where(_r.c.id == state.open_id))
            later.append(dict(values, id=uuid.uuid4(), subscription_id=subscription_id, valid_from=state.open_from,
                              valid_to=None, seq=seq + 1))
            continue
        if state.open_id is not None:
            closes.append({"revision_id": state.open_id, "valid_to": when})
        inserts.append(dict(values, id=uuid.uuid4(), subscription_id=subscription_id, valid_from=when,
                            valid_to=None))
    target = _r.c.id == bindparam("revision_id")
    if closes:
        connection.execute(update(_r).where(target).values(valid_to=bindparam("valid_to")), closes)
    if rewrites:
        connection.execute(
            update(_r).where(target).values(
                {name: bindparam(name) for name in ("organization_id", "plan_id", "currency", "status", "mrr_minor")}
            ),
            rewrites,
        )
    if inserts:
        connection.execute(insert(_r), inserts)  # seq: its default, 0
    if later:
        connection.execute(insert(_r), later)


NOTED = "billing_graphql.mrr_history"


def _after_flush(session: Session, _flush_context) -> None:
    noted = session.info.get(NOTED) or Noted()
    note_flush(session, noted)
    if noted:
        session.info[NOTED] = noted


def record_pending(session: Session, instant: datetime | None = None) -> None:
    """Write the revisions the changes so far call for, now (the commit writes the rest): work
    done step by step at several instants (the billing run) records each step at its own instant
    (``instant``, else ``session.info["now"]``, else the wall clock, when no changed row dates it)."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # what the commit would flush next, so that it is noted too
    noted = session.info.pop(NOTED, None)
    if noted:
        now = session.info.get("now") or instant
        record_revisions(session.connection(), noted.resolve(session, now), now or datetime.now(UTC))


def _before_commit(session: Session) -> None:
    record_pending(session)


def _after_rollback(session: Session, previous_transaction) -> None:
    # Only the whole transaction's rollback forgets; after a savepoint's, what was noted is
    # re-read at commit anyway (a change rolled back compares equal and writes nothing).
    if previous_transaction.parent is None:
        session.info.pop(NOTED, None)


def backfill(connection: Connection, now: datetime) -> None:
    """Open a revision for every subscription that has none (used by the migration)."""
    missing = select(_s.c.id, _s.c.created_at).where(
        ~select(_r.c.id).where(_r.c.subscription_id == _s.c.id).exists()
    )
    found = Touched({row.id: row.created_at for row in connection.execute(missing)}, {}, {})
    if found.subscriptions:
        record_revisions(connection, found, now)


def install() -> None:
    """Listen on every Session (idempotent)."""
    for name, listener in (("after_flush", _after_flush), ("before_commit", _before_commit),
                           ("after_soft_rollback", _after_rollback)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
