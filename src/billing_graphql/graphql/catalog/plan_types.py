"""Plan types: prices as Money, limits per metric, feature flags."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from billing_graphql.db.models import Metric as MetricRow
from billing_graphql.db.models import Plan as PlanRow
from billing_graphql.db.models.catalog import MetricKind as DomainMetricKind
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.common import Money, from_row, load_nodes

if TYPE_CHECKING:
    from billing_graphql.graphql.catalog.charge_types import Charge

MetricKind = strawberry.enum(DomainMetricKind, name="MetricKind")


@strawberry.type(description="A usage metric plans are limited on.")
class Metric:
    code: str
    name: str
    kind: MetricKind = strawberry.field(description="GAUGE: a current count; COUNTER: summed per billing month.")
    unit: str

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
        return from_row(cls, row, **{name: Money.of(getattr(row, name), row.currency) for name in _PRICES})

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
