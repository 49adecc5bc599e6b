"""The upcoming invoice of an organization's live subscription read on the driver's connection (the compiled path's
``subscription { upcomingInvoice }``): two statements where ``renewals.upcoming_invoice`` sends about ten.

``live_upcoming`` reads the live subscription with its organization's account credit (one statement), and, unless
it ends at its period's end (``renewals.upcoming_renewal``), what pricing its renewal reads (``read_renewal_inputs``:
one statement), then prices it with ``renewals.price_renewal``, as ``upcoming_invoice`` does.

``read_renewal_inputs`` gives what ``renewals.renewal_inputs`` gives, a ``RenewalInputs``, from one statement of one
row whose columns are its reads (``db.json_rows``): the plan billed next, the frozen prices of an older version, the
``agents`` gauge, the attached add-ons, the charges of the ended period's version with their metrics, their
counters and distinct values, the coupon, the pending items, the tax rate. Each read is the service's own statement
(``pricing.attached_addons_statement``, ``invoice_items.pending_items_statement``, ``invoicing.rate_in_force``,
``usage.reading.counter_rows``, ...), and the service's own rules turn its rows into the inputs (``renewal_plan``,
``renewal_version``, ``version_price_of``, ``billed_agents``, ``fold_counters``, ``usage_priced``, ``already_billed``,
``coupon_applies``, ``rule_in_force``). Rows are plain records (``SimpleNamespace``) where the pricing reads
attributes only; an add-on's and a charge's record stands for both rows of its pair.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, func, select

from billing_graphql.db.engine import Database
from billing_graphql.db.json_rows import JsonRows
from billing_graphql.db.models import (
    Addon, Coupon, InvoiceItem, Metric, Organization, Plan, PlanCharge, PlanVersion, Subscription, SubscriptionAddon,
    TaxRate, UsageUniqueValue,
)
from billing_graphql.db.prepared import Compiled
from billing_graphql.domain.coupon_duration import coupon_applies
from billing_graphql.domain.overage import usage_month_keys
from billing_graphql.domain.plan_versions import version_at_renewal
from billing_graphql.domain.proration import billed_agents
from billing_graphql.services.billing.invoice_items import pending_items_statement
from billing_graphql.services.billing.invoicing import rate_in_force, rule_in_force
from billing_graphql.services.billing.renewals import (
    RenewalInputs, ended_period, price_renewal, renewal_plan, renewal_version, upcoming_renewal,
)
from billing_graphql.services.billing.usage_charges import already_billed, usage_priced
from billing_graphql.services.catalog.charges import CHARGE_ORDER
from billing_graphql.services.subscriptions.loading import live_subscription_statement
from billing_graphql.services.subscriptions.pricing import (
    agents_gauge, attached_addons_statement, frozen_version, version_price_of,
)
from billing_graphql.services.subscriptions.results import InvoicePreview
from billing_graphql.services.usage.reading import counter_rows, fold_counters, with_distinct_counts

_SUBSCRIPTION = tuple(column.key for column in Subscription.__table__.columns)

# The live subscription (``live_subscription_statement``), every column, and its organization's account credit.
_LIVE = Compiled(
    live_subscription_statement(bindparam("organization_id"))
    .with_only_columns(*Subscription.__table__.columns, Organization.credit_balance, Organization.credit_currency)
    .join_from(Subscription, Organization, Organization.id == Subscription.organization_id)
)

_ORGANIZATION, _SUBSCRIPTION_ID = bindparam("organization_id"), bindparam("subscription_id")
_PLAN_ID = bindparam("plan_id")  # the plan billed next (``renewal_plan``)
_CURRENCY = select(Plan.currency).where(Plan.id == _PLAN_ID).scalar_subquery()
# The charges of the version the ended period was on (none at a trial's end: no plan given).
_CHARGED = (PlanCharge.plan_id == bindparam("charges_plan_id")) & (PlanCharge.version == bindparam("charges_version"))

_PLAN = JsonRows(select(Plan.id, Plan.name, Plan.currency, Plan.base_price_monthly, Plan.base_price_annual,
                        Plan.per_agent_price, Plan.included_agents, Plan.version).where(Plan.id == _PLAN_ID))
# The frozen prices of the version it pays from the next period on, where that is an older one.
_FROZEN = JsonRows(frozen_version(_PLAN_ID, bindparam("version")).with_only_columns(
    PlanVersion.base_price_monthly, PlanVersion.base_price_annual, PlanVersion.per_agent_price))
_GAUGE = JsonRows(agents_gauge(_ORGANIZATION))
_ADDONS = JsonRows(attached_addons_statement(_SUBSCRIPTION_ID).with_only_columns(
    SubscriptionAddon.quantity, Addon.name, Addon.price_monthly, Addon.price_annual, Addon.unit))
_CHARGES = JsonRows(
    select(Metric.id, Metric.name, Metric.aggregation, PlanCharge.model, PlanCharge.included_units,
           PlanCharge.unit_amount, PlanCharge.package_size, PlanCharge.tiers)
    .join(Metric, Metric.id == PlanCharge.metric_id).where(_CHARGED).order_by(*CHARGE_ORDER))
_COUNTERS = JsonRows(counter_rows(_ORGANIZATION, select(PlanCharge.metric_id).where(_CHARGED), bindparam("last_key")))
# The distinct values of each charged metric across the period's billing months (``with_distinct_counts``): keys
# from ``first_key`` to ``last_key``, the months of ``usage_month_keys`` (consecutive); none without a first key.
_DISTINCT = JsonRows(
    select(UsageUniqueValue.metric_id, func.count(func.distinct(UsageUniqueValue.value)).label("count"))
    .where(UsageUniqueValue.organization_id == _ORGANIZATION,
           UsageUniqueValue.metric_id.in_(select(PlanCharge.metric_id).where(_CHARGED)),
           UsageUniqueValue.period_key.between(bindparam("first_key"), bindparam("last_key")))
    .group_by(UsageUniqueValue.metric_id))
_COUPON = JsonRows(select(Coupon.discount_type, Coupon.percent_off, Coupon.amount_off, Coupon.currency)
                   .where(Coupon.id == bindparam("coupon_id")))
_ITEMS = JsonRows(pending_items_statement(_ORGANIZATION, _CURRENCY).with_only_columns(
    InvoiceItem.description, InvoiceItem.unit_amount, InvoiceItem.quantity))
_TAX = JsonRows(rate_in_force(_CURRENCY, bindparam("at")).with_only_columns(
    TaxRate.name, TaxRate.rate, TaxRate.base_numerator, TaxRate.base_denominator, TaxRate.effective_from))

_READS = (_PLAN, _FROZEN, _GAUGE, _ADDONS, _CHARGES, _COUNTERS, _DISTINCT, _COUPON, _ITEMS, _TAX)
_INPUTS = Compiled(select(*(read.column().label(f"bgq_read{number}") for number, read in enumerate(_READS))))


async def read_renewal_inputs(db: Database, organization: Organization, subscription: Subscription, *,
                              at: datetime, trial_end: bool) -> RenewalInputs:
    """``renewals.renewal_inputs`` in one statement on the driver's connection (see the module)."""
    plan_id, billing_period = renewal_plan(subscription)
    ended = ended_period(subscription)
    keys = [] if trial_end else usage_month_keys(ended)
    applies = coupon_applies(subscription.coupon_periods_remaining, has_coupon=subscription.coupon_id is not None)
    (row,) = await _INPUTS.on(db.engine.dialect).rows(db, {
        "organization_id": organization.id, "subscription_id": subscription.id, "plan_id": plan_id,
        # Older than the plan's: only without a scheduled plan change (``renewal_version``), whose version is this.
        "version": version_at_renewal(subscription.plan_version, subscription.pending_plan_version),
        "charges_plan_id": None if trial_end else subscription.plan_id, "charges_version": subscription.plan_version,
        "last_key": keys[-1] if keys else None, "first_key": keys[0] if len(keys) > 1 else None,
        "coupon_id": subscription.coupon_id if applies else None, "at": at})
    plan, frozen, gauge, addons, charges, counters, distinct, coupon, items, tax = (
        read.records(text) for read, text in zip(_READS, row, strict=True))
    (plan,) = plan
    version = renewal_version(subscription, plan)
    usage = ()
    if not trial_end:
        counted, spanning = fold_counters([charge.id for charge in charges], ended, (
            (use.metric_id, use.aggregation, use.period_key, use.value, use.updated_at) for use in counters))
        with_distinct_counts(counted, spanning, ((values.metric_id, values.count) for values in distinct))
        key = (subscription.plan_id, subscription.plan_version)
        usage = tuple(usage_priced({key: [(charge, charge) for charge in charges]}, counted, ended,
                                   billed=already_billed(subscription.usage_billed, ended)).by_version[key])
    return RenewalInputs(
        plan=plan, version=version, billing_period=billing_period,
        price=version_price_of(plan, version, frozen[0] if frozen else None),
        agents=billed_agents(gauge[0].value if gauge else None, subscription.agent_count),
        addons=tuple((addon, addon) for addon in addons), usage=usage, coupon=coupon[0] if coupon else None,
        items=tuple(items), tax_rule=rule_in_force(tax, at))


@dataclass(frozen=True, slots=True)
class Upcoming:
    """An organization's live subscription (its row as a record) and what its next renewal bills (None: it ends)."""

    subscription: SimpleNamespace
    preview: InvoicePreview | None


async def live_upcoming(db: Database, organization_id: uuid.UUID) -> Upcoming | None:
    """The live subscription and its ``renewals.upcoming_invoice``, read in two statements on the driver's connection
    (one when it ends at its period's end); None without a live subscription."""
    rows = await _LIVE.on(db.engine.dialect).values(db, {"organization_id": organization_id})
    if not rows:
        return None
    *values, credit_balance, credit_currency = rows[0]
    subscription = SimpleNamespace(**dict(zip(_SUBSCRIPTION, values, strict=True)))
    due = upcoming_renewal(subscription)
    if due is None:
        return Upcoming(subscription, None)
    at, trial_end = due
    organization = SimpleNamespace(id=subscription.organization_id, credit_balance=credit_balance,
                                   credit_currency=credit_currency)
    inputs = await read_renewal_inputs(db, organization, subscription, at=at, trial_end=trial_end)
    renewal = price_renewal(organization, subscription, inputs, at=at, trial_end=trial_end)
    return Upcoming(subscription, InvoicePreview.of_invoice(renewal.draft))
