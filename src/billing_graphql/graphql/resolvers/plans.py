"""Root fields for reading the plan catalog."""

from __future__ import annotations

import strawberry
from strawberry import relay

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import Forbidden
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.types.common import decode_id
from billing_graphql.graphql.types.plans import PlanType
from billing_graphql.services import plans


def _may_see_inactive(info: Info, include_inactive: bool) -> bool:
    if include_inactive and not info.context.actor.is_super_admin:
        raise Forbidden("Forbidden: only super-admins see inactive plans.")
    return include_inactive


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow(),
        description="Plans in display order (sort order, then monthly price). Inactive ones only for super-admins.",
    )
    async def plans(self, info: Info, include_inactive: bool = False) -> list[PlanType] | None:
        rows = await plans.list_plans(info.context.db, include_inactive=_may_see_inactive(info, include_inactive))
        return [PlanType.from_row(row) for row in rows]

    @strawberry.field(extensions=allow(), description="One plan by id or slug.")
    async def plan(
        self, info: Info, id: relay.GlobalID | None = None, slug: str | None = None
    ) -> PlanType | None:
        see_inactive = info.context.actor.role is DomainRole.SUPER_ADMIN
        try:
            plan_id = decode_id(id, "Plan") if id is not None else None
            row = await plans.get_plan(info.context.db, plan_id=plan_id, slug=slug, include_inactive=see_inactive)
        except DomainBillingError:
            return None
        return PlanType.from_row(row)
