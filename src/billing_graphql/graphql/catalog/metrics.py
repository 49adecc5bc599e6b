"""Root fields of the metric catalog: list it (everyone), add metrics (super-admins)."""

from __future__ import annotations

import strawberry

from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.services.pagination import read_rows

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.catalog.plan_types import Metric, MetricAggregation, MetricKind
from billing_graphql.services.catalog import metrics as catalog


@strawberry.input
class CreateMetricInput:
    code: str = strawberry.field(description="Lower-case letters, digits and underscores, e.g. 'voice_minutes'.")
    name: str
    kind: MetricKind | None = strawberry.field(
        default=None, description="Optional with `aggregation` (it must agree: GAUGE is LATEST, COUNTER any other); "
                                  "alone, COUNTER is SUM of quantity and GAUGE is LATEST.")
    unit: str = ""
    aggregation: MetricAggregation | None = strawberry.field(
        default=None, description="How events aggregate per billing month (or give `kind`).")
    property: str | None = strawberry.field(
        default=None, description="The event property to aggregate: required for UNIQUE_COUNT, optional for SUM, MAX "
                                  "and LATEST (default: quantity), refused for COUNT. 1 to 64 letters, digits, "
                                  "'_', '-' or '.', starting with a letter or '_'.")


CreateMetricPayload = node_payload("CreateMetricPayload", "metric", Metric)


def metrics_query(context: object) -> RootQuery:
    """The rows ``metrics`` lists (the SQL tier wraps the same statement in JSON)."""
    from billing_graphql.services.catalog.metrics import metrics_statement

    return RootQuery(Statement(metrics_statement, ()))


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(), description="The metrics plans are limited on, by code.")
    async def metrics(self, info: Info) -> list[Metric] | None:
        return [Metric.from_row(row) for row in await read_rows(info.context.db, metrics_query(info.context).statement)]


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN), description="Add a metric to the catalog.")
    async def create_metric(self, info: Info, input: CreateMetricInput) -> CreateMetricPayload | None:
        context = info.context
        return await CreateMetricPayload.of(catalog.create_metric(
            context.db, context.actor, code=input.code, name=input.name, kind=input.kind, unit=input.unit,
            aggregation=input.aggregation, property_name=input.property, now=context.now,
        ))
