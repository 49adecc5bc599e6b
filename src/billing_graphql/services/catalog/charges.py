"""A plan's usage charges as rows (``plan_charges``): read one version's, write a version's set.

A charge row belongs to a plan and a version number (the plan's current one, ``plans.version``, or
an older one whose subscribers still pay it). Amounts are exact minor units (``domain.charges``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Metric, PlanCharge
from billing_graphql.domain.charges import Charge, MetricCharge, Tier
from billing_graphql.domain.errors import validation
from billing_graphql.services.catalog.metrics import known_metric_codes, metric_ids_by_code


def charge_of(row: Any) -> Charge:
    """The domain's charge of a row: a ``PlanCharge``, or any with its columns (``usage.reading.ChargedUse``)."""
    tiers = tuple(
        Tier(tier["up_to"], Decimal(tier["unit_amount"]), Decimal(tier["flat_amount"])) for tier in row.tiers or ()
    )
    return Charge(row.model, row.included_units, row.unit_amount, row.package_size, tiers)


def _tiers_json(charge: Charge) -> list[dict[str, Any]] | None:
    if not charge.tiers:
        return None
    return [{"up_to": tier.up_to, "unit_amount": str(tier.unit_amount), "flat_amount": str(tier.flat_amount)}
            for tier in charge.tiers]


def charge_row(plan_id: uuid.UUID, version: int, position: int, metric_id: uuid.UUID, charge: Charge) -> PlanCharge:
    return PlanCharge(id=uuid.uuid4(), plan_id=plan_id, version=version, position=position, metric_id=metric_id,
                      model=charge.model, included_units=charge.included_units, unit_amount=charge.unit_amount,
                      package_size=charge.package_size, tiers=_tiers_json(charge))


# A version's charges in their order: by position, the id after a tie (rows written outside the services may share
# a position), as ``Plan.charges`` shows them.
CHARGE_ORDER = (PlanCharge.position, PlanCharge.id)


async def charges_of_versions(session: AsyncSession, versions: Iterable[tuple[uuid.UUID, int]]
                              ) -> dict[tuple[uuid.UUID, int], list[tuple[PlanCharge, Metric]]]:
    """The charges of each (plan id, version number), in their order, with their metrics: one statement."""
    keys = list(dict.fromkeys(versions))
    found: dict[tuple[uuid.UUID, int], list[tuple[PlanCharge, Metric]]] = {key: [] for key in keys}
    if not keys:
        return found
    rows = await session.execute(
        select(PlanCharge, Metric).join(Metric, Metric.id == PlanCharge.metric_id)
        .where(tuple_(PlanCharge.plan_id, PlanCharge.version).in_(keys))
        .order_by(PlanCharge.plan_id, PlanCharge.version, *CHARGE_ORDER)
    )
    for charge, metric in rows.all():
        found[(charge.plan_id, charge.version)].append((charge, metric))
    return found


async def charges_of_version(session: AsyncSession, plan_id: uuid.UUID, version: int
                             ) -> list[tuple[PlanCharge, Metric]]:
    return (await charges_of_versions(session, [(plan_id, version)]))[(plan_id, version)]


async def resolve_metrics(session: AsyncSession, charges: Sequence[MetricCharge], field: str = "charges", *,
                          ids: dict[str, uuid.UUID] | None = None) -> list[tuple[uuid.UUID, MetricCharge]]:
    """Each charge with its metric's id (from ``ids`` when the caller read them already);
    VALIDATION on ``charges[i].metric`` for an unknown code."""
    if ids is None:
        ids = await metric_ids_by_code(session, [charge.metric for charge in charges])
    for index, charge in enumerate(charges):
        if charge.metric not in ids:
            known = await known_metric_codes(session)
            raise validation(f"Unknown metric {charge.metric!r}; known: {', '.join(known)}.",
                             f"{field}[{index}].metric")
    return [(ids[charge.metric], charge) for charge in charges]


def write_charges(session: AsyncSession, plan_id: uuid.UUID, version: int,
                  charges: Sequence[tuple[uuid.UUID, MetricCharge]]) -> None:
    session.add_all(charge_row(plan_id, version, position, metric_id, item.charge)
                    for position, (metric_id, item) in enumerate(charges))


def charges_snapshot(charges: Sequence[MetricCharge]) -> list[dict[str, Any]]:
    """Charges as the audit log keeps them (amounts in exact minor units, as text)."""
    return [{"metric": item.metric, "model": item.charge.model.value, "included_units": item.charge.included_units,
             "unit_amount": str(item.charge.unit_amount), "package_size": item.charge.package_size,
             "tiers": _tiers_json(item.charge)} for item in charges]
