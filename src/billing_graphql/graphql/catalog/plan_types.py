"""Plan types: prices as Money, limits per metric, feature flags."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from billing_graphql.db.models import Metric as MetricRow
from billing_graphql.db.models import Plan as PlanRow
from billing_graphql.db.models import PlanFeature as PlanFeatureRow
from billing_graphql.db.models import PlanLimit as PlanLimitRow
from billing_graphql.domain.aggregation import Aggregation as DomainAggregation
from billing_graphql.domain.aggregation import MetricKind as DomainMetricKind
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.services.catalog.charges import CHARGE_ORDER
from billing_graphql.graphql.columns import Children, Parent, columns, money, renamed, resolved
from billing_graphql.graphql.common import Money, from_row, load_nodes

if TYPE_CHECKING:
    from billing_graphql.graphql.catalog.charge_types import Charge

MetricKind = strawberry.enum(DomainMetricKind, name="MetricKind")
MetricAggregation = strawberry.enum(
    DomainAggregation, name="MetricAggregation",
    description="How a metric aggregates its events per billing month.",
)


@strawberry.type(description="A usage metric plans are limited on.")
class Metric:
    code: str
    name: str
    kind: MetricKind = strawberry.field(
        description="GAUGE: a current count (aggregation LATEST); COUNTER: per billing month (every other "
                    "aggregation; COUNTER metrics made before aggregations are SUM of quantity).")
    unit: str
    aggregation: MetricAggregation = strawberry.field(
        description="COUNT: events; SUM: quantity or `property` summed; MAX: the largest; UNIQUE_COUNT: distinct "
                    "values of `property`; LATEST: the last by timestamp. Per billing month.")
    property: str | None = strawberry.field(
        description="The event property aggregated (SUM, MAX, LATEST: an integer; UNIQUE_COUNT: any value); null: "
                    "`quantity` (COUNT takes none).")

    @classmethod
    def from_row(cls, row: MetricRow) -> Metric:
        return from_row(cls, row)


@strawberry.type(description="A plan's limit on one metric; `limit` null means unlimited.")
class PlanLimit:
    metric: Metric
    limit: int | None


@strawberry.type(description="A feature flag of a plan.")
class PlanFeature:
    key: str
    enabled: bool


_PRICES = ("base_price_monthly", "base_price_annual", "per_agent_price", "overage_message_price")


@strawberry.type(name="Plan", description="A plan of the catalog, with its prices, limits and features.")
class PlanType(relay.Node):
    id: relay.NodeID[str]
    row: strawberry.Private[PlanRow]

    name: str
    slug: str
    description: str
    currency: str
    base_price_monthly: Money
    base_price_annual: Money
    per_agent_price: Money
    overage_message_price: Money = strawberry.field(description=(
        "The STANDARD charge on messages (its included units: the messages limit); 0 without one, or when the "
        "messages charge is another model."))
    included_agents: int
    trial_days: int
    is_active: bool
    sort_order: int
    version: int = strawberry.field(description="The current price version; a price change of a plan with live "
                                                "subscriptions makes a new one (updatePlan applyTo).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: PlanRow) -> PlanType:
        return from_row(cls, row)

    @strawberry.field(description="Usage charges of the current version, one per metric, billed in arrears "
                                  "at renewal as USAGE invoice lines.")
    async def charges(self, info: Info) -> list[Annotated[Charge, strawberry.lazy(
            "billing_graphql.graphql.catalog.charge_types")]]:
        from billing_graphql.graphql.catalog.charge_types import Charge as ChargeType

        rows = await info.context.loaders.charges_by_plan.load(self.row.id)
        return [ChargeType.of(charge, metric, self.row.currency) for charge, metric in rows]

    @strawberry.field(description="Limits per metric; a metric the plan does not list is unlimited.")
    async def limits(self, info: Info) -> list[PlanLimit]:
        rows = await info.context.loaders.limits_by_plan.load(self.row.id)
        return [PlanLimit(metric=Metric.from_row(metric), limit=limit.limit_value) for limit, metric in rows]

    async def _limit(self, info: Info, code: str) -> int | None:
        # The same loader as `limits`: every convenience field of a plan shares one batch.
        rows = await info.context.loaders.limits_by_plan.load(self.row.id)
        for limit, metric in rows:
            if metric.code == code:
                return limit.limit_value
        return None

    @strawberry.field(description="Limit on agents (seats); null is unlimited.")
    async def max_agents(self, info: Info) -> int | None:
        return await self._limit(info, "agents")

    @strawberry.field(description="Limit on contacts; null is unlimited.")
    async def max_contacts(self, info: Info) -> int | None:
        return await self._limit(info, "contacts")

    @strawberry.field(description="Limit on messages per billing month; null is unlimited.")
    async def max_messages_month(self, info: Info) -> int | None:
        return await self._limit(info, "messages")

    @strawberry.field(description="Limit on channels; null is unlimited.")
    async def max_channels(self, info: Info) -> int | None:
        return await self._limit(info, "channels")

    @strawberry.field(description="Limit on AI agents; null is unlimited.")
    async def max_ai_agents(self, info: Info) -> int | None:
        return await self._limit(info, "ai_agents")

    @strawberry.field(description="Feature flags by key; a key the plan does not list is off.")
    async def features(self, info: Info) -> list[PlanFeature]:
        rows = await info.context.loaders.features_by_plan.load(self.row.id)
        return [PlanFeature(key=row.key, enabled=row.enabled) for (row,) in rows]

    async def _feature(self, info: Info, key: str) -> bool:
        rows = await info.context.loaders.features_by_plan.load(self.row.id)
        return any(row.key == key and row.enabled for (row,) in rows)

    @strawberry.field(description="The feature flag `aiAgent`.")
    async def ai_agent(self, info: Info) -> bool:
        return await self._feature(info, "aiAgent")

    @strawberry.field(description="The feature flag `apiAccess`.")
    async def api_access(self, info: Info) -> bool:
        return await self._feature(info, "apiAccess")

    @strawberry.field(description="The feature flag `dedicatedSupport`.")
    async def dedicated_support(self, info: Info) -> bool:
        return await self._feature(info, "dedicatedSupport")

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = info.context.actor
        see_inactive = actor is not None and actor.role is DomainRole.SUPER_ADMIN
        return await load_nodes(info.context.loaders.plan_by_id, node_ids, cls.from_row,
                                lambda row: row.is_active or see_inactive)


# The SQL forms of the resolvers above: the same rows the loaders read, in the same order.

def _limit_sql(code: str):
    """``PlanType._limit``: the plan's limit on metric ``code`` (null: unlimited or not listed)."""
    return lambda sql, row, *parents: (
        f"(SELECT l.limit_value FROM plan_limits AS l JOIN metrics AS m ON m.id = l.metric_id "
        f"WHERE l.plan_id = {row}.id AND m.code = '{code}')")


def _feature_sql(key: str):
    """``PlanType._feature``: the plan lists feature ``key`` enabled."""
    return lambda sql, row, *parents: sql.boolean(
        f"EXISTS (SELECT 1 FROM plan_features AS f WHERE f.plan_id = {row}.id AND f.key = '{key}' AND f.enabled)")


columns(Metric, MetricRow)
columns(PlanFeature, PlanFeatureRow)
columns(PlanLimit, PlanLimitRow, metric=resolved(Parent("metrics", "metric_id")), limit=renamed("limit_value"))
columns(
    PlanType, PlanRow,
    **{name: money(name) for name in _PRICES},
    # ``charges_by_plan``: the charges of the plan's current version, in their order (``CHARGE_ORDER``; forms:
    # catalog.charge_types).
    charges=resolved(Children(
        "plan_charges", None, lambda charge: ", ".join(f"{charge}.{column.key}" for column in CHARGE_ORDER),
        where=lambda charge, plan: f"{charge}.plan_id = {plan}.id AND {charge}.version = {plan}.version")),
    limits=resolved(Children("plan_limits", "plan_id",
                             lambda alias: f"(SELECT code FROM metrics WHERE metrics.id = {alias}.metric_id)")),
    features=resolved(Children("plan_features", "plan_id", "key")),
    max_agents=resolved(_limit_sql("agents")),
    max_contacts=resolved(_limit_sql("contacts")),
    max_messages_month=resolved(_limit_sql("messages")),
    max_channels=resolved(_limit_sql("channels")),
    max_ai_agents=resolved(_limit_sql("ai_agents")),
    ai_agent=resolved(_feature_sql("aiAgent")),
    api_access=resolved(_feature_sql("apiAccess")),
    dedicated_support=resolved(_feature_sql("dedicatedSupport")),
)
