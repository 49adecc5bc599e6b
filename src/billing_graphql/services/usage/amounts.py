"""The amount so far of each charged metric, for the usage views (``usage.metrics[].amount``,
``entitlements``, partner ``usageSnapshots``): the quantity the view shows for the billing month,
priced by the charge of the plan version the live subscription pays (``domain.charges``, one
month's included units, rounded once), less what a plan change's invoice billed already.

One statement (the charges of every version involved) for any number of organizations, none when
no organization has a live subscription. A metric without a charge has no amount.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import MetricKind, Plan, Subscription
from billing_graphql.domain.charges import Charge, included_in_period, price
from billing_graphql.domain.periods import Period
from billing_graphql.services.billing.usage_charges import already_billed
from billing_graphql.services.catalog.charges import charge_of, charges_of_versions


@dataclass(frozen=True, slots=True)
class AmountsOf:
    """What one organization's amounts are computed from."""

    organization_id: uuid.UUID
    subscription: Subscription | None
    plan: Plan | None
    month: Period  # the billing month the view shows
    used: dict[uuid.UUID, int]  # the view's quantity per metric id


async def usage_amounts(session: AsyncSession, items: Sequence[AmountsOf]) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    """Per organization, the amount (minor units of its plan's currency) of each charged metric."""
    priced = [item for item in items if item.subscription is not None and item.plan is not None]
    charges = await charges_of_versions(session, [(item.plan.id, item.subscription.plan_version) for item in priced])
    amounts: dict[uuid.UUID, dict[uuid.UUID, int]] = {item.organization_id: {} for item in items}
    for item in priced:
        amounts[item.organization_id] = metric_amounts(
            ((metric.id, metric.kind, charge_of(row)) for row, metric in
             charges[(item.plan.id, item.subscription.plan_version)]),
            item.used, item.subscription.usage_billed, item.month)
    return amounts


def metric_amounts(charged: Iterable[tuple[uuid.UUID, MetricKind, Charge]], used: Mapping[uuid.UUID, int],
                   usage_billed: dict | None, month: Period) -> dict[uuid.UUID, int]:
    """The amount (minor units) of each charged metric (its id, kind and the charge of the version paid): the
    quantity ``used`` shows (0 without one) priced with one month's included units and rounded once, a COUNTER's
    less what a plan change's invoice billed of ``month`` already (``usage_billed``: the subscription's). Also the
    SQL tier's (``graphql.usage.schema``), over what its first read found."""
    billed = already_billed(usage_billed, month)
    amounts: dict[uuid.UUID, int] = {}
    for metric_id, kind, charge in charged:
        quantity = used.get(metric_id, 0)
        if kind is MetricKind.COUNTER:
            quantity = max(quantity - billed.get(metric_id, 0), 0)
        amounts[metric_id] = price(charge, quantity, included=included_in_period(charge.included_units, 1)).amount
    return amounts
