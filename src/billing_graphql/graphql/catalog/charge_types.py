"""Usage charges of a plan (``domain.charges``): types and inputs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import strawberry

from billing_graphql.db.models import Metric as MetricRow
from billing_graphql.db.models import PlanCharge as PlanChargeRow
from billing_graphql.domain.charges import ChargeModel as DomainChargeModel
from billing_graphql.domain.charges import ChargeSpec, TierSpec
from billing_graphql.domain.plan_versions import ApplyTo as DomainApplyTo
from billing_graphql.graphql.catalog.plan_types import Metric
from billing_graphql.graphql.columns import Form, JsonItems, Nested, Parent, columns, resolved
from billing_graphql.graphql.common import Money
from billing_graphql.graphql.scalars import BigInt
from billing_graphql.services.catalog.charges import charge_of

ChargeModel = strawberry.enum(DomainChargeModel, name="ChargeModel", description=(
    "STANDARD: each billable unit at unitAmount; PACKAGE: unitAmount per started package of packageSize units; "
    "GRADUATED: each tier prices its own units; VOLUME: every unit at the tier the total reaches."))
ApplyTo = strawberry.enum(DomainApplyTo, name="ApplyTo", description=(
    "Whom a price change of a plan with live subscriptions applies to: NEW_SUBSCRIPTIONS (existing ones keep their "
    "version's prices) or AT_RENEWAL (each moves to the new prices at its next renewal)."))


@strawberry.type(description="A tier of a GRADUATED or VOLUME charge: units up to `upTo` (null: no upper bound).")
class ChargeTier:
    up_to: BigInt | None
    unit_amount: Money
    flat_amount: Money


@strawberry.type(description="The price of a metric's usage per billing period, billed in arrears at renewal.")
class Charge:
    metric: Metric
    model: ChargeModel
    included_units: BigInt | None = strawberry.field(description=(
        "Free units per billing month (an annual period includes twelve times as many); null: every unit is "
        "included (overageMessagePrice on a plan with unlimited messages)."))
    unit_amount: Money = strawberry.field(description="STANDARD and PACKAGE: the price of a unit or a package "
                                                      "(may hold fractions of a minor unit).")
    package_size: BigInt | None
    tiers: list[ChargeTier]

    @classmethod
    def of(cls, row: PlanChargeRow, metric: MetricRow, currency: str) -> Charge:
        charge = charge_of(row)
        return cls(metric=Metric.from_row(metric), model=charge.model, included_units=charge.included_units,
                   unit_amount=Money.exact(charge.unit_amount, currency), package_size=charge.package_size,
                   tiers=[ChargeTier(up_to=tier.up_to, unit_amount=Money.exact(tier.unit_amount, currency),
                                     flat_amount=Money.exact(tier.flat_amount, currency)) for tier in charge.tiers])


# The SQL forms of ``Charge.of`` (below ``Plan.charges``: the rows ``charges_by_plan`` reads): ``charge_of``'s values,
# the tiers from the JSON column, amounts shown as ``Money.exact`` shows them in the plan's currency (the row after the
# charge's). The differential tests (tests/perf/test_compiled_charges.py) hold the two to the same bytes.

def _exact_money(minor: Callable[..., str], plan: int) -> Form:
    """``Money.exact`` of the exact minor amount ``minor(sql, row)`` in the currency of the plan, the ``plan``-th
    of the row's parents."""
    return resolved(Nested("Money", lambda sql, row, *parents: (minor(sql, row), f"{parents[plan]}.currency"),
                           exact=True))


columns(
    ChargeTier, None,  # an element of ``plan_charges.tiers``; its parents: the charge, the plan
    up_to=resolved(lambda sql, tier, *parents: sql.json_member(tier, "up_to")),
    unit_amount=_exact_money(lambda sql, tier: sql.json_member(tier, "unit_amount"), plan=1),
    flat_amount=_exact_money(lambda sql, tier: sql.json_member(tier, "flat_amount"), plan=1),
)
columns(
    Charge, PlanChargeRow,
    metric=resolved(Parent("metrics", "metric_id")),
    unit_amount=_exact_money(lambda sql, charge: f"{charge}.unit_amount", plan=0),
    tiers=resolved(JsonItems("tiers")),
)


@strawberry.input(description="A tier; amounts in major units of the plan's currency.")
class ChargeTierInput:
    up_to: BigInt | None = strawberry.field(description="Last unit of the tier; null for the last tier only.")
    unit_amount: Decimal
    flat_amount: Decimal | None = strawberry.field(default=None, description="Once when the tier is reached.")


@strawberry.input(description="A usage charge on one metric; amounts in major units of the plan's currency "
                              "(a unit may cost a fraction of the minor unit: \"0.5\" IDR, \"0.0015\" USD).")
class ChargeInput:
    metric: str = strawberry.field(description="A metric code, as `metrics` lists them; one charge per metric.")
    model: ChargeModel
    included_units: BigInt = strawberry.field(default=0, description="Free units per billing month.")
    unit_amount: Decimal | None = strawberry.field(default=None, description="STANDARD and PACKAGE only.")
    package_size: BigInt | None = strawberry.field(default=None, description="PACKAGE only: units per package.")
    tiers: list[ChargeTierInput] = strawberry.field(default_factory=list, description="GRADUATED and VOLUME only.")


def charge_specs(items: list[ChargeInput]) -> list[ChargeSpec]:
    return [ChargeSpec(item.metric, item.model, item.included_units, item.unit_amount, item.package_size,
                       tuple(TierSpec(tier.up_to, tier.unit_amount, tier.flat_amount) for tier in item.tiers))
            for item in items]
