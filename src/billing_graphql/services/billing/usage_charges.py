"""A period's usage priced by the charges of a plan version: the USAGE invoice lines.

Used by the renewal (the ended period, in arrears), ``upcomingInvoice`` (the period so far), the
change invoice of an immediate plan change (the old plan's charges, the period so far) and the
usage views (the amount so far per metric). Two statements whatever the number of charges: the
version's charges with their metrics, and the period's quantities of their metrics.

The quantities are ``services.usage.reading.period_quantities``: each metric's aggregate over the
period's billing months as its aggregation defines it (COUNT and SUM added up, MAX the peak,
UNIQUE_COUNT the distinct values, LATEST the last value).

What a plan change's invoice bills (``usage_billed``): an aggregate of a SUMMED metric (COUNT,
SUM) splits at the change, so the change invoice bills the units so far at the old plan's charges
and the renewal bills only those counted after it (the counter starts again for the new plan).
A peak, a distinct count or a last value does not split (the peak after the change is not kept
apart from the one before it), so such a metric is NOT billed on the change invoice: the renewal
bills the whole period's aggregate once, at the charges of the plan in force at the renewal.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Metric, PlanCharge
from billing_graphql.domain.aggregation import Aggregation
from billing_graphql.domain.charges import ChargeModel, Priced, included_in_period, plain, price
from billing_graphql.domain.invoices import UNIT_AMOUNT_PLACES, InvoiceLineKind, LineDraft
from billing_graphql.domain.overage import cap_usage, usage_month_keys
from billing_graphql.domain.periods import Period
from billing_graphql.services.catalog.charges import charge_of, charges_of_versions

SUMMED = frozenset({Aggregation.COUNT, Aggregation.SUM})  # aggregates that split at a plan change


def summed(metric: Metric) -> bool:
    return metric.aggregation in SUMMED


@dataclass(frozen=True, slots=True)
class MetricAmount:
    """One charge applied to a period's quantity."""

    metric: Metric
    charge: PlanCharge
    priced: Priced
    included: int | None


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """The charges of each (plan, version) asked for, applied to the period's quantities, and the
    quantities as counted (before what a plan change billed already is taken off)."""

    by_version: dict[tuple[uuid.UUID, int], list[MetricAmount]]
    counted: dict[uuid.UUID, int]
    counters: frozenset[uuid.UUID]  # the SUMMED metrics among them (COUNT, SUM: ``summed``)

    def billed_now(self, period: Period) -> dict:
        """``subscriptions.usage_billed`` after a change invoice billed this usage: the SUMMED
        quantities counted so far, for the period's billing months."""
        return {"keys": usage_month_keys(period),
                "quantities": {str(metric_id): value for metric_id, value in self.counted.items()
                               if metric_id in self.counters}}


def already_billed(usage_billed: dict | None, period: Period) -> dict[uuid.UUID, int]:
    """What a plan change's invoice billed of ``period``'s SUMMED usage (``subscriptions.usage_billed``
    when it is about billing months of ``period``): taken off, so that counters start again."""
    if not usage_billed or not set(usage_billed.get("keys", ())) & set(usage_month_keys(period)):
        return {}
    return {uuid.UUID(key): int(value) for key, value in usage_billed.get("quantities", {}).items()}


async def priced_usage(session: AsyncSession, organization_id: uuid.UUID, versions: Sequence[tuple[uuid.UUID, int]],
                       period: Period, *, billed: dict[uuid.UUID, int] | None = None) -> PeriodUsage:
    """The charges of each (plan, version) applied to the organization's quantities in ``period``,
    less what was ``billed`` already (SUMMED metrics; ``already_billed``)."""
    charges = await charges_of_versions(session, versions)
    # Imported here: ``services.usage.reading`` reads the amounts so far through this module.
    from billing_graphql.services.usage.reading import period_quantities

    counted = await period_quantities(session, organization_id, list(_metrics(charges)), period)
    return usage_priced(charges, counted, period, billed=billed)


def _metrics(charges: Mapping[Any, Sequence[tuple[Any, Metric]]]) -> dict[uuid.UUID, Metric]:
    return {metric.id: metric for rows in charges.values() for _, metric in rows}


def usage_priced(charges: Mapping[tuple[uuid.UUID, int], Sequence[tuple[PlanCharge, Metric]]],
                 counted: dict[uuid.UUID, int], period: Period, *,
                 billed: dict[uuid.UUID, int] | None = None) -> PeriodUsage:
    """``priced_usage`` of what it reads: each version's charges in their order with their metrics
    (``charges_of_versions``) and the period's quantities of those metrics (``period_quantities``)."""
    metrics = _metrics(charges)
    counters = frozenset(metric_id for metric_id, metric in metrics.items() if summed(metric))
    billed = billed or {}
    months = len(usage_month_keys(period))
    priced: dict[tuple[uuid.UUID, int], list[MetricAmount]] = {}
    for key, rows in charges.items():
        priced[key] = []
        for row, metric in rows:
            quantity = counted.get(metric.id, 0)
            if metric.id in counters:
                quantity = max(quantity - billed.get(metric.id, 0), 0)
            included = included_in_period(row.included_units, months)
            priced[key].append(MetricAmount(metric, row, price(charge_of(row), quantity, included=included), included))
    return PeriodUsage(priced, counted, counters)


def _description(item: MetricAmount) -> str:
    charge, name = item.charge, item.metric.name
    if charge.model is ChargeModel.PACKAGE:
        text = f"{name} in packages of {charge.package_size:,}"
    elif charge.model is ChargeModel.STANDARD:
        text = name
    else:
        text = f"{name} ({charge.model.value.lower()} tiers)"
    if item.included:
        text += f" above the {charge.included_units:,} included per month"
    return text


def _detail(item: MetricAmount, *, capped: bool) -> dict:
    """``_description`` as structure (domain.invoices.LineDraft.detail)."""
    charge = item.charge
    return {"metric": item.metric.name, "model": charge.model.value,
            "package_size": charge.package_size if charge.model is ChargeModel.PACKAGE else None,
            "included": charge.included_units if item.included else None, "capped": capped}


def tier_breakdown(priced: Priced) -> list[dict] | None:
    if not priced.tiers:
        return None
    return [{"from_unit": tier.from_unit, "to_unit": tier.to_unit, "units": tier.units,
             "unit_amount": str(plain(tier.unit_amount)), "flat_amount": str(plain(tier.flat_amount)),
             "amount": str(plain(tier.amount))}
            for tier in priced.tiers]


def usage_lines(items: Sequence[MetricAmount], period: Period, *, seats_amount: int, cap: int | None,
                summed_only: bool = False) -> list[LineDraft]:
    """One USAGE line per charge with billable units (quantity: the units above the included
    ones), each rounded once; the spending cap bounds seats plus their sum, spent in order.
    ``summed_only`` (a plan change's invoice): only SUMMED metrics' charges (see the module)."""
    billable = [item for item in items if item.priced.billable > 0 and (not summed_only or summed(item.metric))]
    billed = cap_usage([item.priced.amount for item in billable], seats_amount, cap)
    lines: list[LineDraft] = []
    for item, amount in zip(billable, billed, strict=True):
        description = _description(item)
        if amount < item.priced.amount:
            description += " (capped by the spending cap)"
        units = item.priced.billable
        unit_amount = (item.charge.unit_amount if item.charge.model is ChargeModel.STANDARD
                       else plain((item.priced.exact / units).quantize(UNIT_AMOUNT_PLACES)))
        lines.append(LineDraft(kind=InvoiceLineKind.USAGE, description=description, quantity=Decimal(units),
                               unit_amount=unit_amount, amount=amount, period_start=period.start,
                               period_end=period.end, tier_breakdown=tier_breakdown(item.priced),
                               detail=_detail(item, capped=amount < item.priced.amount)))
    return lines
