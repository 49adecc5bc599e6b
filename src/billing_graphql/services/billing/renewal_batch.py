"""The billing run's batches: many organizations' renewals in one transaction, one statement per
kind of row.

``renew_batch`` claims up to ``limit`` organizations with work due (after ``after``, in id order)
in one statement: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent runs (processes) take
disjoint batches and an organization a mutation holds is passed by; on SQLite the write
transaction (BEGIN IMMEDIATE) already makes the run the only writer. Under those locks:

- a subscription whose only due step is a renewal (ACTIVE at its period end, TRIALING at its
  trial end; no cancellation at period end, no dunning) is renewed in the batch. Its renewal is
  priced by the single path's own functions (``renewals.price_renewal`` on ``RenewalInputs`` read
  in bulk: plans, seats, add-ons, coupons, pending items, tax rates, default cards, one statement
  each for the whole batch; usage through ``priced_usage`` for a plan version with charges) and
  applied by them (``apply_renewal``, ``invoice_values``, ``bill_items``, ``mark_open``,
  ``dunning.settle``). The numbers of a month are one block of the gapless series
  (``next_block``, taken last so that the series' row is locked for as short as can be), then the
  processor is called for the batch concurrently (at most ``RunConfig.charge_concurrency`` at
  once), each call with the key derived from its
  subscription, period and attempt (``dunning.payment_id``), as the single path does; then the
  batch's new rows are written at once, a kind at a time (``db.bulk.insert_rows``: a COPY on
  PostgreSQL, an executemany INSERT on SQLite): the invoices, their lines, the payments (with their
  outcome), and last the outbox events in the order they were made. Those
  rows are plain records (``_record``: every column, defaults filled in) that the shared helpers
  change as they change ORM objects, and the events the helpers emit are kept by ``_Writes`` rather
  than added to the session: the ORM's unit of work is left only the subscriptions and the
  organizations (one UPDATE each, ``db.bulk.update_rows``) and a few rare rows (ledger
  entries of account credit, the buyer's copy of billing details, the pending items billed);
- a subscription renewed so that a step is still due (several periods behind, a dunning retry
  due already) goes on through the single path once the batch has committed;
- every other subscription of the claimed organizations (several steps due, dunning, a
  cancellation, a trial notice) is left in ``Batch.rest`` for the single path
  (``jobs.billing_run.run_subscription``) once the batch has committed.

Failures, one subscription at a time:

- a subscription whose renewal cannot be priced (bad data: an exception) is left out of the
  batch before anything of it is written, counted as an error and left for the next run;
- a processor call that raises (anything but a ``GatewayError``, which leaves its payment
  PENDING as in the single path) rolls the batch back (``RetryWithout``); the caller runs the
  batch again without that subscription's organization. The others are charged again with the
  same keys, so the processor answers with the first outcome: nothing is charged twice;
- anything else failing the batch's transaction (a constraint at an INSERT or at the flush) rolls
  it back and the claimed subscriptions go one by one through the single path (``Batch.rest``),
  again with the same keys.

A crash (kill -9) anywhere before the commit loses the batch's writes and nothing else; the next
run redoes the batch with the same keys.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient
from sqlalchemy.orm.base import NO_VALUE

from billing_graphql.db import mrr_history
from billing_graphql.db.bulk import insert_rows, update_rows
from billing_graphql.db.engine import Database
from billing_graphql.db.models import (
    Addon,
    BillingDetails,
    BillingReason,
    Coupon,
    Invoice,
    InvoiceItem,
    InvoiceLine,
    InvoiceNumberSequence,
    Metric,
    Organization,
    OutboxEvent,
    Payment,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionAddon,
    UsageCounter,
)
from billing_graphql.domain.billing_run import Step, due_steps, next_step
from billing_graphql.domain.coupon_duration import coupon_applies
from billing_graphql.domain.proration import billed_agents
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.billing import dunning
from billing_graphql.services.billing.charging import Charge, charge_invoices
from billing_graphql.domain.records import fields_of
from billing_graphql.services.billing.invoice_items import bill_items
from billing_graphql.services.billing.invoicing import (
    amount_due,
    announce_created,
    apply_credit,
    invoice_number,
    invoice_values,
    mark_open,
    next_block,
    rule_in_force,
    tax_rates_of,
)
from billing_graphql.services.billing.renewals import (
    Renewal,
    RenewalInputs,
    apply_renewal,
    ended_period,
    price_renewal,
    renewal_plan,
    renewal_version,
)
from billing_graphql.services.billing.run_shared import RunConfig, Tally, due_condition, due_state
from billing_graphql.services.billing.usage_charges import already_billed, priced_usage
from billing_graphql.services.catalog.charges import charges_of_versions
from billing_graphql.services.platform.audit import EventRows
from billing_graphql.services.platform.billing_details import copy_billing_details
from billing_graphql.services.subscriptions.pricing import version_price
from billing_graphql.services.unit_of_work import MoneyMove

log = logging.getLogger(__name__)


class RetryWithout(Exception):
    """A processor call of the batch raised: the batch is rolled back, to be run again without
    these organizations (their subscriptions are counted as errors and left for the next run)."""

    def __init__(self, organization_ids: set[uuid.UUID]) -> None:
        super().__init__(f"{len(organization_ids)} subscription(s) of the batch failed at the processor")
        self.organization_ids = organization_ids


@dataclass(slots=True)
class Batch:
    """What one batch did; ``rest``: (subscription id, organization id) for the single path."""

    tally: Tally = field(default_factory=Tally)
    errors: int = 0
    rest: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    last: uuid.UUID | None = None  # the last organization claimed: where the next batch starts
    claimed: int = 0


@dataclass(slots=True)
class _Renewing:
    """A subscription renewed in the batch, as the batch goes."""

    subscription: Subscription
    uow: MoneyMove  # the organization's unit of work on the batch's session (``_Writes``), at the step's instant
    renewal: Renewal
    trial_end: bool
    invoice: SimpleNamespace | None = None  # the invoice's row, a record (``_record``)
    outcome: dunning.Outcome | None = None


def renews_in_batch(subscription: Subscription, now: datetime) -> bool:
    """Whether the subscription's only due step is a renewal the batch makes."""
    steps = due_steps(due_state(subscription), now)
    if len(steps) != 1 or subscription.cancel_at_period_end or subscription.next_retry_at is not None:
        return False
    step = steps[0].step
    return ((step is Step.PERIOD_END and subscription.status is SubscriptionStatus.ACTIVE)
            or (step is Step.TRIAL_END and subscription.status is SubscriptionStatus.TRIALING))


async def claim(session: AsyncSession, now: datetime, config: RunConfig, *, after: uuid.UUID | None, limit: int,
                skip_locked: bool, excluded: set[uuid.UUID]) -> list[Organization]:
    """Up to ``limit`` organizations with a subscription due, after ``after`` in id order, locked
    by this transaction (one statement; on PostgreSQL those another transaction holds are passed)."""
    due = select(Subscription.id).where(Subscription.organization_id == Organization.id,
                                        due_condition(now, config)).exists()
    statement = select(Organization).where(due).order_by(Organization.id).limit(limit)
    if after is not None:
        statement = statement.where(Organization.id > after)
    if excluded:
        statement = statement.where(Organization.id.not_in(excluded))
    if skip_locked:
        statement = statement.with_for_update(skip_locked=True, of=Organization)
    return list((await session.scalars(statement.execution_options(populate_existing=True))).all())


async def renew_batch(db: Database, config: RunConfig, now: datetime, *, after: uuid.UUID | None, limit: int,
                      excluded: set[uuid.UUID]) -> Batch:
    """Claim a batch and renew what it can (see the module's docstring). ``Batch.claimed`` is 0
    when nothing is left; ``RetryWithout`` when a processor call raised."""
    batch = Batch()
    claimed: list[tuple[uuid.UUID, uuid.UUID]] = []
    try:
        async with db.write() as session:
            organizations = await claim(session, now, config, after=after, limit=limit,
                                        skip_locked=not db.is_sqlite, excluded=excluded)
            if not organizations:
                return batch
            batch.claimed, batch.last = len(organizations), organizations[-1].id
            by_id = {organization.id: organization for organization in organizations}
            subscriptions = (await session.scalars(
                select(Subscription).where(Subscription.organization_id.in_(list(by_id)), due_condition(now, config))
                .order_by(Subscription.organization_id, Subscription.id)
                .execution_options(populate_existing=True))).all()
            claimed = [(subscription.id, subscription.organization_id) for subscription in subscriptions]
            one_each = defaultdict(int)
            for subscription in subscriptions:
                one_each[subscription.organization_id] += 1
            renewing = []
            for subscription in subscriptions:
                if one_each[subscription.organization_id] == 1 and renews_in_batch(subscription, now):
                    renewing.append(subscription)
                else:
                    batch.rest.append((subscription.id, subscription.organization_id))
            if renewing:
                await _renew(session, by_id, renewing, now, config, batch)
    except RetryWithout:
        raise
    except Exception:
        if not claimed:
            raise
        log.exception("billing run: a batch of %s subscriptions failed; each goes through the single path",
                      len(claimed))
        return Batch(rest=claimed, last=batch.last, claimed=batch.claimed)
    return batch


async def _renew(session: AsyncSession, organizations: dict[uuid.UUID, Organization],
                 subscriptions: list[Subscription], now: datetime, config: RunConfig, batch: Batch) -> None:
    inputs = await _inputs(session, organizations, subscriptions, now)
    writes = _Writes(session)
    renewing: list[_Renewing] = []
    for subscription in subscriptions:
        organization = organizations[subscription.organization_id]
        step = due_steps(due_state(subscription), now)[0]
        trial_end = step.step is Step.TRIAL_END
        try:
            renewal = price_renewal(organization, subscription, await inputs.of(subscription, step.at, trial_end),
                                    at=step.at, trial_end=trial_end)
        except Exception:
            log.exception("billing run: subscription %s could not be priced; left for the next run", subscription.id)
            batch.errors += 1
            continue
        uow = MoneyMove(session=writes, organization=organization, operation="billing_run", key=None, request={},
                        actor=None, now=step.at, gateways=config.gateways)
        renewing.append(_Renewing(subscription, uow, renewal, trial_end))
    if not renewing:
        return
    months: dict[str, list[_Renewing]] = defaultdict(list)
    lines: list[dict[str, object]] = []
    for item in renewing:  # the single path's end_period, one subscription after another, nothing written yet
        subscription, uow, renewal = item.subscription, item.uow, item.renewal
        apply_renewal(uow, subscription, renewal, trial_end=item.trial_end)
        item.invoice = _INVOICE(**invoice_values(
            uow.organization, renewal.draft, subscription_id=subscription.id,
            billing_reason=BillingReason.SUBSCRIPTION_CYCLE, period_start=subscription.current_period_start,
            period_end=subscription.current_period_end, now=uow.now))
        lines += (dict(_LINE, **fields_of(line), id=uuid.uuid4(), invoice_id=item.invoice.id, position=position)
                  for position, line in enumerate(renewal.draft.lines))
        bill_items(renewal.items, item.invoice, uow.now)
        months[uow.now.strftime("%Y%m")].append(item)
    # The numbers last: the series' row stays locked until the commit (as for one number).
    for month, items in months.items():
        for item, value in zip(items, await next_block(session, InvoiceNumberSequence, month, len(items)),
                               strict=True):
            item.invoice.number = invoice_number(month, value)
    for item in renewing:
        mark_open(item.invoice, item.uow.now)
        announce_created(writes, item.invoice, item.uow.now)
    payments = await _collect(writes, renewing, inputs, config)
    # The invoices, their lines and the payments (with their outcome), a kind at a time.
    await insert_rows(session, Invoice.__table__, [vars(item.invoice) for item in renewing])
    await insert_rows(session, InvoiceLine.__table__, lines)
    await insert_rows(session, Payment.__table__, [vars(payment) for payment in payments])
    for item in renewing:  # rows that point at an invoice written: few (account credit, billing details)
        apply_credit(item.uow.organization, item.invoice, item.uow.now)
        if inputs.details.get(item.uow.organization.id) is not None:
            await copy_billing_details(session, item.invoice)
    for item in renewing:
        await dunning.settle(item.uow, item.subscription, [item.outcome], config, batch.tally, new_invoice=True)
        batch.tally.invoice_ids.append(item.invoice.id)
        if next_step(due_state(item.subscription), now) is None:
            batch.tally.examined += 1
        else:  # more periods behind, or a retry due already: the single path goes on once this commits
            batch.rest.append((item.subscription.id, item.subscription.organization_id))
    # The outbox events at once, in the order they were made; one UPDATE each for the
    # subscriptions and the organizations. The few ORM rows left (ledger entries, the buyers'
    # copies, the items billed) and the MRR history are written at the commit.
    await insert_rows(session, OutboxEvent.__table__, [{**_EVENT, **event} for event in writes.events])
    # The MRR history notes the subscriptions changed as its flush listener would have.
    mrr_history.note_subscriptions(session, await _update(session, [item.subscription for item in renewing]))
    await _update(session, list({id(item.uow.organization): item.uow.organization for item in renewing}.values()))


def _columns(model: type) -> dict[str, object]:
    """Every column of ``model``'s table with what an insert gives it when nothing is given: its
    scalar default, else None (the ids, whose defaults are functions, are always given)."""
    return {column.key: column.default.arg if column.default is not None and column.default.is_scalar else None
            for column in model.__table__.columns}


def _record(model: type) -> Callable[..., SimpleNamespace]:
    """Plain records of ``model``'s rows (every column an attribute), for the rows the batch writes
    with one INSERT instead of the ORM's unit of work: the shared helpers read and change them as
    they do the ORM's objects. A value for no column fails the INSERT (an unconsumed column)."""
    template = _columns(model)

    def record(**values: object) -> SimpleNamespace:
        return SimpleNamespace(**{**template, **values})

    return record


_INVOICE = _record(Invoice)
_PAYMENT = _record(Payment)
_LINE = _columns(InvoiceLine)
_EVENT = _columns(OutboxEvent)


def _changed(row: object, keys: set[str]) -> tuple[dict[str, object], set[str]]:
    """``row``'s values, and its columns (of ``keys``) whose value differs from the one loaded: as
    the flush tells a change (an attribute set to the value it had is no change)."""
    state = inspect(row)
    values = state.dict
    return values, {name for name, loaded in state.committed_state.items()
                    if name in keys and values.get(name, NO_VALUE) != loaded}


async def _update(session: AsyncSession, rows: list) -> list[tuple[object, set[str]]]:
    """One UPDATE (``db.bulk.update_rows``) of ``rows`` (ORM objects of one model, changed by the
    batch): the columns any of them changed, each row's values; then the rows leave the session, so that the
    commit's flush has nothing of them to write again. Each row with the columns it changed."""
    if not rows:
        return []
    table = type(rows[0]).__table__
    keys = set(table.columns.keys())
    found = [_changed(row, keys) for row in rows]
    changed = [(row, names) for row, (_, names) in zip(rows, found, strict=True)]
    await update_rows(session, table, [values for values, _ in found],
                      sorted(set().union(*(names for _, names in found))))
    for row in rows:  # out of the session with no cascade to walk (expunge's): nothing written refers to them
        make_transient(row)
    return changed


class _Writes(EventRows):
    """The batch's session as the shared helpers (``uow.emit``, ``mark_paid``, ...) see it: the
    outbox events they emit are kept (``EventRows``: ``emit_event`` makes no ORM object of them),
    as rows in the order they were made (their ids, ``ordered_uuid``, rise in that order), for one
    INSERT; everything else is the session's."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self.session = session

    def __getattr__(self, name: str):
        return getattr(self.session, name)


async def _collect(session: _Writes, renewing: list[_Renewing], inputs: _Inputs,
                   config: RunConfig) -> list[SimpleNamespace]:
    """Charge the batch's invoices: those with an amount due, a default card and its gateway at
    once (``charge_invoices``); the others (nothing due, no card) as the single path does. The
    payments (records, to insert) are returned."""
    charged: list[_Renewing] = []
    charges: list[Charge] = []
    for item in renewing:
        organization, invoice = item.uow.organization, item.invoice
        method = inputs.methods.get(organization.id)
        gateway = item.uow.available_gateway(method.gateway) if method is not None else None
        if amount_due(invoice) <= 0 or gateway is None:
            item.outcome = await dunning.collect(item.uow, invoice, attempt=0)
            continue
        charged.append(item)
        charges.append(Charge(invoice, method, gateway, dunning.payment_id(invoice, 0),
                              organization.gateway_customer_id, item.uow.now))
    if not charges:
        return []
    results = await charge_invoices(session, charges, concurrency=config.charge_concurrency, model=_PAYMENT)
    raised = {item.uow.organization.id for item, result in zip(charged, results, strict=True)
              if isinstance(result, BaseException)}
    for item, result in zip(charged, results, strict=True):
        if isinstance(result, BaseException):
            log.error("billing run: the charge of subscription %s raised; left for the next run",
                      item.subscription.id, exc_info=result)
        else:
            item.outcome = dunning.outcome_of(result)
    if raised:
        raise RetryWithout(raised)
    return results


@dataclass(slots=True)
class _Inputs:
    """What the batch's renewals are priced from, read in bulk (``RenewalInputs`` per subscription)."""

    session: AsyncSession
    organizations: dict[uuid.UUID, Organization]
    plans: dict[uuid.UUID, Plan]
    gauges: dict[uuid.UUID, int]
    addons: dict[uuid.UUID, list[tuple[SubscriptionAddon, Addon]]]
    charged_versions: set[tuple[uuid.UUID, int]]
    coupons: dict[uuid.UUID, Coupon]
    items: dict[uuid.UUID, list[InvoiceItem]]
    rates: dict[str, list]
    methods: dict[uuid.UUID, PaymentMethod]
    details: dict[uuid.UUID, BillingDetails]
    prices: dict = field(default_factory=dict)

    async def of(self, subscription: Subscription, at: datetime, trial_end: bool) -> RenewalInputs:
        """``renewals.renewal_inputs`` from the bulk reads (the same values, fewer statements)."""
        organization = self.organizations[subscription.organization_id]
        plan_id, billing_period = renewal_plan(subscription)
        plan = self.plans[plan_id]
        version = renewal_version(subscription, plan)
        if (plan.id, version) not in self.prices:
            self.prices[(plan.id, version)] = await version_price(self.session, plan, version)
        usage = ()
        key = (subscription.plan_id, subscription.plan_version)
        if not trial_end and key in self.charged_versions:
            ended = ended_period(subscription)
            used = await priced_usage(self.session, organization.id, [key], ended,
                                      billed=already_billed(subscription.usage_billed, ended))
            usage = tuple(used.by_version[key])
        coupon = None
        if coupon_applies(subscription.coupon_periods_remaining, has_coupon=subscription.coupon_id is not None):
            coupon = self.coupons.get(subscription.coupon_id)
        return RenewalInputs(
            plan=plan, version=version, billing_period=billing_period, price=self.prices[(plan.id, version)],
            agents=billed_agents(self.gauges.get(organization.id), subscription.agent_count),
            addons=tuple(self.addons.get(subscription.id, ())), usage=usage, coupon=coupon,
            items=tuple(item for item in self.items.get(organization.id, ()) if item.currency == plan.currency),
            tax_rule=rule_in_force(self.rates.get(plan.currency, ()), at))


async def _inputs(session: AsyncSession, organizations: dict[uuid.UUID, Organization],
                  subscriptions: list[Subscription], now: datetime) -> _Inputs:
    org_ids = [subscription.organization_id for subscription in subscriptions]
    sub_ids = [subscription.id for subscription in subscriptions]
    plan_ids = {renewal_plan(subscription)[0] for subscription in subscriptions}
    plans = {plan.id: plan for plan in await session.scalars(select(Plan).where(Plan.id.in_(plan_ids)))}
    gauges = {org_id: int(value) for org_id, value in await session.execute(
        select(UsageCounter.organization_id, UsageCounter.value).join(Metric, Metric.id == UsageCounter.metric_id)
        .where(UsageCounter.organization_id.in_(org_ids), Metric.code == "agents",
               UsageCounter.period_key == "current"))}
    addons: dict[uuid.UUID, list[tuple[SubscriptionAddon, Addon]]] = defaultdict(list)
    for attached, addon in await session.execute(
            select(SubscriptionAddon, Addon).join(Addon, Addon.id == SubscriptionAddon.addon_id)
            .where(SubscriptionAddon.subscription_id.in_(sub_ids))
            .order_by(Addon.sort_order, Addon.name, Addon.id)):
        addons[attached.subscription_id].append((attached, addon))
    versions = {(subscription.plan_id, subscription.plan_version) for subscription in subscriptions}
    charged = {key for key, rows in (await charges_of_versions(session, versions)).items() if rows}
    coupon_ids = {subscription.coupon_id for subscription in subscriptions if subscription.coupon_id is not None}
    coupons = ({coupon.id: coupon for coupon in await session.scalars(select(Coupon).where(Coupon.id.in_(coupon_ids)))}
               if coupon_ids else {})
    items: dict[uuid.UUID, list[InvoiceItem]] = defaultdict(list)
    for item in await session.scalars(
            select(InvoiceItem).where(InvoiceItem.organization_id.in_(org_ids), InvoiceItem.invoice_id.is_(None),
                                      InvoiceItem.deleted_at.is_(None))
            .order_by(InvoiceItem.created_at, InvoiceItem.id)):
        items[item.organization_id].append(item)
    rates = await tax_rates_of(session, sorted({plan.currency for plan in plans.values()}))
    methods = {method.organization_id: method for method in await session.scalars(
        select(PaymentMethod).where(PaymentMethod.organization_id.in_(org_ids), PaymentMethod.is_default.is_(True)))}
    details = {row.organization_id: row for row in await session.scalars(
        select(BillingDetails).where(BillingDetails.organization_id.in_(org_ids)))}
    return _Inputs(session, organizations, plans, gauges, addons, charged, coupons, items, rates, methods, details)
