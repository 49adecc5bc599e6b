"""The plan catalog: read it (tenants see active plans), create and update plans (super-admins).

Prices come in as major-unit Decimals and are stored as minor units of the plan's currency.
Limits are per metric code (None: unlimited; a metric the plan does not list is unlimited as
well); features are flags by key (a key the plan does not list is off).

Charges (``domain.charges``) price a metric's usage, one per metric. ``overageMessagePrice`` is
the STANDARD charge on ``messages`` whose included units are the messages limit: writing it sets
(or, at 0, removes) that charge, a new messages limit moves its included units, and the plan's
``overage_message_price`` column keeps what reading it shows (``domain.charges.overage_message_price``).
Giving both ``charges`` and ``overageMessagePrice`` is VALIDATION.

A price change of a plan with live subscriptions makes a new version (``domain.plan_versions``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Metric, Plan, PlanCharge, PlanFeature, PlanLimit, Subscription
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.catalog import (
    INT_MAX,
    TRIAL_DAYS_MAX,
    FeatureSpec,
    LimitSpec,
    annual_price_default,
    check_currency,
    check_features,
    check_int_range,
    check_limits,
    check_slug,
    clean_description,
    clean_name,
    given,
    price_minor,
    unknown_metric,
)
from billing_graphql.domain.charges import (
    OVERAGE_METRIC,
    ChargeModel,
    ChargeSpec,
    MetricCharge,
    checked_charges,
    overage_message_price,
    standard_charge,
)
from billing_graphql.domain.errors import BillingError, BillingErrorCode, validation
from billing_graphql.domain.plan_versions import ApplyTo, needs_new_version
from billing_graphql.services.catalog.charges import (
    charge_of,
    charges_of_version,
    charges_snapshot,
    resolve_metrics,
    write_charges,
)
from billing_graphql.services.catalog.plan_versions import count_live_subscriptions, start_version
from billing_graphql.services.catalog.shared import (
    audited_fields, checked_columns, input_field, patch_of, record_catalog_change,
)
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.platform.writes import already_exists, unique_write
from billing_graphql.services.catalog.metrics import known_metric_codes, metric_ids_by_code, not_null

PRICE_FIELDS = ("base_price_monthly", "base_price_annual", "per_agent_price", "overage_message_price")
VERSIONED_PRICES = ("base_price_monthly", "base_price_annual", "per_agent_price")  # and the charges

@dataclass(frozen=True)
class PlanSpec:
    """A new plan. Prices in major units of ``currency``; the annual price defaults to ten
    months of the monthly one."""

    name: str
    slug: str
    base_price_monthly: Decimal
    currency: str = "IDR"
    base_price_annual: Decimal | None = None
    per_agent_price: Decimal = Decimal(0)
    overage_message_price: Decimal = Decimal(0)
    included_agents: int = 1
    trial_days: int = 14
    description: str = ""
    limits: Sequence[LimitSpec] = ()
    features: Sequence[FeatureSpec] = ()
    is_active: bool = True
    sort_order: int = 0
    charges: Sequence[ChargeSpec] = ()


PlanPatch = patch_of(PlanSpec, "PlanPatch", """Changes to a plan: a field left as ``KEEP`` keeps its value.
``limits`` and ``features``, when given, replace the plan's whole set.""")
PLAN_FIELDS = audited_fields(PlanSpec, without=("limits", "features", "charges"), extra=("version",))


@dataclass
class _Values:
    """A plan's scalar columns, checked, prices in minor units."""

    columns: dict[str, Any]
    limits: list[LimitSpec] | None = None  # None: unchanged
    features: list[FeatureSpec] | None = None
    charges: list[MetricCharge] | None = None  # None: unchanged (unless overageMessagePrice or the messages limit moves it)
    touched: set[str] = field(default_factory=set)


def plan_order():
    return (Plan.sort_order, Plan.base_price_monthly, Plan.name, Plan.id)


def plan_statement(include_inactive: bool, plan_id: uuid.UUID | None, slug: str | None) -> Any:
    """The plan of an id or a slug (the caller gives one), and only an active one unless ``include_inactive``."""
    statement = select(Plan)
    if plan_id is not None:
        statement = statement.where(Plan.id == plan_id)
    if slug is not None:
        statement = statement.where(Plan.slug == slug)
    return statement if include_inactive else statement.where(Plan.is_active.is_(True))


def _check_counts(columns: dict[str, Any]) -> None:
    if "included_agents" in columns:
        check_int_range(
            columns["included_agents"], "includedAgents", low=0, high=INT_MAX, what="includedAgents"
        )
    if "trial_days" in columns:
        check_int_range(columns["trial_days"], "trialDays", low=0, high=TRIAL_DAYS_MAX, what="trialDays")
    if "sort_order" in columns:
        check_int_range(columns["sort_order"], "sortOrder", low=-INT_MAX, high=INT_MAX, what="sortOrder")


def _spec_values(spec: PlanSpec) -> _Values:
    currency = check_currency(spec.currency)
    monthly = price_minor(spec.base_price_monthly, currency, "basePriceMonthly")
    columns: dict[str, Any] = {
        "name": clean_name(spec.name),
        "slug": check_slug(spec.slug),
        "description": clean_description(spec.description),
        "currency": currency,
        "base_price_monthly": monthly,
        "base_price_annual": (
            annual_price_default(monthly)
            if spec.base_price_annual is None
            else price_minor(spec.base_price_annual, currency, "basePriceAnnual")
        ),
        "per_agent_price": price_minor(spec.per_agent_price, currency, "perAgentPrice"),
        "overage_message_price": price_minor(spec.overage_message_price, currency, "overageMessagePrice"),
        "included_agents": spec.included_agents,
        "trial_days": spec.trial_days,
        "is_active": bool(spec.is_active),
        "sort_order": spec.sort_order,
    }
    _check_counts(columns)
    limits = check_limits(list(spec.limits))
    charges = checked_charges(list(spec.charges), currency)
    if charges and columns["overage_message_price"]:
        raise _both_overage_and_charges()
    if not charges and columns["overage_message_price"]:
        messages_limit = next((item.limit for item in limits if item.metric == OVERAGE_METRIC), None)
        charges = [MetricCharge(OVERAGE_METRIC, standard_charge(columns["overage_message_price"], messages_limit))]
    columns["overage_message_price"] = _overage_column(charges)
    return _Values(columns=columns, limits=limits, features=check_features(list(spec.features)), charges=charges)


def _both_overage_and_charges() -> BillingError:
    return validation("overageMessagePrice is the STANDARD charge on messages: give it in charges or as"
                      " overageMessagePrice, not both.", "overageMessagePrice")


def _overage_column(charges: list[MetricCharge]) -> int:
    return overage_message_price(next((item.charge for item in charges if item.metric == OVERAGE_METRIC), None))


def _charges_after(values: _Values, stored: list[MetricCharge], limits_after: dict[str, int | None],
                   stored_limits: dict[str, int | None]) -> list[MetricCharge]:
    """The charge set an update leaves: ``charges`` as given; else the stored set with the messages
    charge set by ``overageMessagePrice`` (removed at 0) or its included units following a new
    messages limit."""
    if values.charges is not None:
        return values.charges
    messages_limit = limits_after.get(OVERAGE_METRIC)
    others = [item for item in stored if item.metric != OVERAGE_METRIC]
    current = next((item for item in stored if item.metric == OVERAGE_METRIC), None)
    if "overage_message_price" in values.touched:
        price = values.columns["overage_message_price"]
        if not price:
            return others
        replaced = MetricCharge(OVERAGE_METRIC, standard_charge(price, messages_limit))
    elif (current is not None and current.charge.model is ChargeModel.STANDARD
          and messages_limit != stored_limits.get(OVERAGE_METRIC)):
        replaced = MetricCharge(OVERAGE_METRIC, replace(current.charge, included_units=messages_limit))
    else:
        return stored
    position = next((index for index, item in enumerate(stored) if item.metric == OVERAGE_METRIC), len(others))
    return [*others[:position], replaced, *others[position:]]


async def _patch_values(session: AsyncSession, plan: Plan, patch: PlanPatch) -> _Values:
    touched = {f.name for f in fields(patch) if given(getattr(patch, f.name))}
    for name in touched:
        if name not in ("description",):
            not_null(getattr(patch, name), input_field(name))
    currency = plan.currency
    columns: dict[str, Any] = {}
    if "currency" in touched:
        currency = check_currency(patch.currency)
        if currency != plan.currency:
            missing = [name for name in PRICE_FIELDS if name not in touched
                       and not (name == "overage_message_price" and "charges" in touched)]
            if missing:
                raise validation(
                    "Changing a plan's currency needs every price in the new currency"
                    f" (missing: {', '.join(input_field(name) for name in missing)}).",
                    "currency",
                )
            if await _plan_in_use(session, plan.id):
                raise validation(
                    "This plan has subscriptions; its currency cannot change. Create a plan in the other currency.",
                    "currency",
                )
        columns["currency"] = currency
    columns.update(checked_columns(patch, touched, currency=currency, prices=PRICE_FIELDS))
    if ("base_price_monthly" in columns and "base_price_annual" not in touched
            and plan.base_price_annual == annual_price_default(plan.base_price_monthly)):
        # An annual price left empty is ten months of the monthly one, in every version (seed 001).
        columns["base_price_annual"] = annual_price_default(columns["base_price_monthly"])
    for name in ("included_agents", "trial_days", "sort_order"):
        if name in touched:
            columns[name] = getattr(patch, name)
    if "is_active" in touched:
        columns["is_active"] = bool(patch.is_active)
    _check_counts(columns)
    if "charges" in touched and "overage_message_price" in touched:
        raise _both_overage_and_charges()
    return _Values(
        columns=columns,
        limits=check_limits(list(patch.limits)) if "limits" in touched else None,
        features=check_features(list(patch.features)) if "features" in touched else None,
        charges=checked_charges(list(patch.charges), currency) if "charges" in touched else None,
        touched=touched,
    )


async def _plan_in_use(session: AsyncSession, plan_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(or_(Subscription.plan_id == plan_id, Subscription.pending_plan_id == plan_id))
            )
        )
    )


async def _resolve_limits(session: AsyncSession, limits: list[LimitSpec], ids: dict[str, uuid.UUID] | None = None
                          ) -> list[tuple[uuid.UUID, int | None]]:
    if ids is None:
        ids = await metric_ids_by_code(session, [spec.metric for spec in limits])
    if any(spec.metric not in ids for spec in limits):
        unknown_metric(limits, await known_metric_codes(session))
    return [(ids[spec.metric], spec.limit) for spec in limits]


async def _slug_taken(session: AsyncSession, slug: str, other_than: uuid.UUID | None = None) -> bool:
    statement = select(Plan.id).where(Plan.slug == slug)
    if other_than is not None:
        statement = statement.where(Plan.id != other_than)
    return await session.scalar(statement) is not None


async def _stored_limits(session: AsyncSession, plan_id: uuid.UUID) -> dict[str, int | None]:
    rows = await session.execute(
        select(Metric.code, PlanLimit.limit_value)
        .join(Metric, Metric.id == PlanLimit.metric_id)
        .where(PlanLimit.plan_id == plan_id)
        .order_by(Metric.code)
    )
    return {code: value for code, value in rows.all()}


async def _stored_features(session: AsyncSession, plan_id: uuid.UUID) -> dict[str, bool]:
    rows = await session.execute(
        select(PlanFeature.key, PlanFeature.enabled).where(PlanFeature.plan_id == plan_id).order_by(PlanFeature.key)
    )
    return {key: enabled for key, enabled in rows.all()}


def _plan_snapshot(plan: Plan, limits: dict[str, int | None], features: dict[str, bool],
                   charges: list[MetricCharge]) -> dict[str, Any]:
    return {
        **snapshot(plan, *PLAN_FIELDS),
        "limits": dict(sorted(limits.items())),
        "features": dict(sorted(features.items())),
        "charges": charges_snapshot(charges),
    }


def _write_children(
    session: AsyncSession, plan_id: uuid.UUID, limits: list[tuple[uuid.UUID, int | None]] | None,
    features: list[FeatureSpec] | None,
) -> None:
    if limits:
        session.add_all(PlanLimit(plan_id=plan_id, metric_id=metric_id, limit_value=value) for metric_id, value in limits)
    if features:
        session.add_all(PlanFeature(plan_id=plan_id, key=spec.key, enabled=spec.enabled) for spec in features)


def _slug_exists(slug: str) -> BillingError:
    return already_exists("A plan with slug", slug, "slug")


async def create_plan(db: Database, actor: Actor | None, spec: PlanSpec, *, now: datetime) -> Plan:
    """Create a plan with its limits and features; audited as ``plan.created``."""
    values = _spec_values(spec)
    plan = Plan(id=uuid.uuid4(), created_at=now, updated_at=now, **values.columns)
    async with unique_write(db, "slug", lambda: _slug_exists(plan.slug)) as session:
        ids = await metric_ids_by_code(session, [spec.metric for spec in values.limits or []]
                                       + [item.metric for item in values.charges or []])  # one read for both
        limits = await _resolve_limits(session, values.limits or [], ids)
        charges = await resolve_metrics(session, values.charges or [], ids=ids)
        if await _slug_taken(session, plan.slug):
            raise _slug_exists(plan.slug)
        plan.version = 1
        session.add(plan)
        await session.flush()  # the limit, feature and charge rows reference it
        _write_children(session, plan.id, limits, values.features)
        write_charges(session, plan.id, plan.version, charges)
        after = _plan_snapshot(
            plan,
            {spec.metric: spec.limit for spec in values.limits or []},
            {spec.key: spec.enabled for spec in values.features or []},
            values.charges or [],
        )
        record_catalog_change(session, actor, "plan.created", plan, now=now, after=after)
    return plan


async def update_plan(db: Database, actor: Actor | None, plan_id: uuid.UUID, patch: PlanPatch, *, now: datetime,
                      apply_to: ApplyTo | None = None) -> Plan:
    """Change the fields given in ``patch``; audited as ``plan.updated`` with before and after.
    A patch that changes nothing writes nothing. A price change of a plan with live subscriptions
    needs ``apply_to`` (PLAN_IN_USE otherwise, nothing written) and makes a new version."""
    async with unique_write(db, "slug", lambda: _slug_exists(str(patch.slug))) as session:
        plan = await session.scalar(select(Plan).where(Plan.id == plan_id).with_for_update())
        if plan is None:
            raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field="id")
        values = await _patch_values(session, plan, patch)
        stored_limits = await _stored_limits(session, plan.id)
        stored_features = await _stored_features(session, plan.id)
        stored_rows = await charges_of_version(session, plan.id, plan.version)
        stored_charges = [MetricCharge(metric.code, charge_of(row)) for row, metric in stored_rows]
        metric_ids = {metric.code: metric.id for _, metric in stored_rows}
        before = _plan_snapshot(plan, stored_limits, stored_features, stored_charges)
        new_limits = None
        codes = [spec.metric for spec in values.limits or []] + [item.metric for item in values.charges or []]
        read = await metric_ids_by_code(session, codes) if codes else {}  # one read for limits and charges
        if values.limits is not None:
            new_limits = await _resolve_limits(session, values.limits, read)
        if values.charges is not None:
            await resolve_metrics(session, values.charges, ids=read)
        metric_ids.update(read)
        if "slug" in values.columns and values.columns["slug"] != plan.slug:
            if await _slug_taken(session, values.columns["slug"], other_than=plan.id):
                raise _slug_exists(values.columns["slug"])
        limits_after = (
            {spec.metric: spec.limit for spec in values.limits} if values.limits is not None else stored_limits
        )
        features_after = (
            {spec.key: spec.enabled for spec in values.features}
            if values.features is not None
            else stored_features
        )
        charges_after = _charges_after(values, stored_charges, limits_after, stored_limits)
        values.columns["overage_message_price"] = _overage_column(charges_after)
        changed_columns = {
            name: value for name, value in values.columns.items() if getattr(plan, name) != value
        }
        limits_changed = limits_after != stored_limits
        features_changed = features_after != stored_features
        charges_changed = charges_after != stored_charges
        if not (changed_columns or limits_changed or features_changed or charges_changed):
            return plan
        prices_changed = charges_changed or any(name in changed_columns for name in VERSIONED_PRICES)
        new_version = needs_new_version(prices_changed=prices_changed,
                                        live_subscriptions=await count_live_subscriptions(session, plan.id)
                                        if prices_changed else 0, apply_to=apply_to)
        if new_version:
            plan.version = await start_version(session, plan, apply_to, now=now)
        elif charges_changed:
            await session.execute(delete(PlanCharge).where(PlanCharge.plan_id == plan.id,
                                                           PlanCharge.version == plan.version))
        for name, value in changed_columns.items():
            setattr(plan, name, value)
        plan.updated_at = now
        if limits_changed:
            await session.execute(delete(PlanLimit).where(PlanLimit.plan_id == plan.id))
        if features_changed:
            await session.execute(delete(PlanFeature).where(PlanFeature.plan_id == plan.id))
        await session.flush()
        _write_children(
            session,
            plan.id,
            new_limits if limits_changed else None,
            values.features if features_changed else None,
        )
        if new_version or charges_changed:
            if any(item.metric not in metric_ids for item in charges_after):
                metric_ids.update((item.metric, metric_id) for metric_id, item in
                                  await resolve_metrics(session, charges_after))
            write_charges(session, plan.id, plan.version, [(metric_ids[item.metric], item) for item in charges_after])
        after = _plan_snapshot(plan, limits_after, features_after, charges_after)
        record_catalog_change(session, actor, "plan.updated", plan, now=now, before=before, after=after)
    return plan
