"""Root fields of the plan catalog: read it (everyone), create and update plans (super-admins)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import strawberry

from billing_graphql.db.models import Plan
from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.graphql.catalog.types import catalog_source
from billing_graphql.services.pagination import read_first, read_rows
from strawberry.permission import BasePermission, PermissionExtension

from billing_graphql.domain.catalog import FeatureSpec, LimitSpec
from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.errors import BillingErrorCode as DomainBillingErrorCode
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError, Forbidden
from billing_graphql.graphql.permissions import HasRole, IsAuthenticated, allow
from billing_graphql.graphql.common import decode_id
from billing_graphql.graphql.ids import read_optional_id
from billing_graphql.graphql.inputs import patch_from_input, spec_from_input
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.catalog.charge_types import ApplyTo, ChargeInput, charge_specs
from billing_graphql.graphql.catalog.plan_types import PlanType
from billing_graphql.services.catalog import plans
from billing_graphql.services.catalog.plans import PlanPatch, PlanSpec


class SuperAdminToListInactive(BasePermission):
    """`includeInactive: true` is for super-admins; everyone else sees the active catalog."""

    message = "Forbidden: only super-admins list inactive items."
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if not kwargs.get("include_inactive"):
            return True
        actor = info.context.actor
        return actor is not None and actor.is_super_admin

    def on_unauthorized(self) -> None:
        raise Forbidden(self.message)


def allow_inactive_to_super_admins(*roles: DomainRole) -> list[PermissionExtension]:
    """Field extensions: authenticated (holding one of ``roles`` when given), and a super-admin
    when asking for inactive items."""
    permissions: list[BasePermission] = [IsAuthenticated()]
    if roles:
        permissions.append(HasRole(*roles))
    permissions.append(SuperAdminToListInactive())
    return [PermissionExtension(permissions=permissions, use_directives=False)]


def plan_id_of(global_id: strawberry.ID, field: str = "id") -> uuid.UUID:
    try:
        return decode_id(global_id, "Plan", field)
    except DomainBillingError:
        raise DomainBillingError(DomainBillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field=field) from None


@strawberry.input(description="A limit on one metric; `limit` null is unlimited.")
class PlanLimitInput:
    metric: str = strawberry.field(description="A metric code, as `metrics` lists them.")
    limit: int | None = None


@strawberry.input
class PlanFeatureInput:
    key: str
    enabled: bool = True


def _limits(items: list[PlanLimitInput]) -> list[LimitSpec]:
    return [LimitSpec(item.metric, item.limit) for item in items]


def _features(items: list[PlanFeatureInput]) -> list[FeatureSpec]:
    return [FeatureSpec(item.key, item.enabled) for item in items]


PLAN_INPUTS = {"limits": _limits, "features": _features, "charges": charge_specs}  # nested inputs -> specs


@strawberry.input(description="A new plan. Amounts are major units of `currency` (\"299000\" IDR, \"29.00\" USD).")
class CreatePlanInput:
    name: str
    slug: str = strawberry.field(description="Lower-case letters, digits and hyphens; unique.")
    base_price_monthly: Decimal
    currency: str = strawberry.field(default="IDR", description="ISO 4217 code.")
    base_price_annual: Decimal | None = strawberry.field(default=None, description="Default: 10 x monthly.")
    per_agent_price: Decimal = Decimal("0")
    overage_message_price: Decimal = Decimal("0")
    included_agents: int = 1
    trial_days: int = 14
    description: str = ""
    limits: list[PlanLimitInput] = strawberry.field(
        default_factory=list, description="Per metric; a metric not listed is unlimited."
    )
    features: list[PlanFeatureInput] = strawberry.field(
        default_factory=list, description="Flags by key: aiAgent, apiAccess, dedicatedSupport (another key is VALIDATION); unlisted keys are off."
    )
    is_active: bool = True
    sort_order: int = 0
    charges: list[ChargeInput] = strawberry.field(
        default_factory=list, description="Usage charges, one per metric (overageMessagePrice is the STANDARD charge "
                                          "on messages: give one or the other).")


@strawberry.input(description="Changes to a plan: a field left out keeps its value. `limits` and `features` replace the whole set.")
class UpdatePlanInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    currency: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Only with every price given, and only while no subscription uses the plan.",
    )
    base_price_monthly: Decimal | None = strawberry.UNSET
    base_price_annual: Decimal | None = strawberry.UNSET
    per_agent_price: Decimal | None = strawberry.UNSET
    overage_message_price: Decimal | None = strawberry.UNSET
    included_agents: int | None = strawberry.UNSET
    trial_days: int | None = strawberry.UNSET
    limits: list[PlanLimitInput] | None = strawberry.UNSET
    features: list[PlanFeatureInput] | None = strawberry.UNSET
    is_active: bool | None = strawberry.UNSET
    sort_order: int | None = strawberry.UNSET
    charges: list[ChargeInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the whole set of usage charges.")
    apply_to: ApplyTo | None = strawberry.field(
        default=strawberry.UNSET, description="Needed when the change alters a price (base, annual, per agent, "
                                              "charges) of a plan with live subscriptions; else PLAN_IN_USE.")


CreatePlanPayload = node_payload("CreatePlanPayload", "plan", PlanType)
UpdatePlanPayload = node_payload("UpdatePlanPayload", "plan", PlanType)


def plan_query(context: Any, parent: Any, id: strawberry.ID | None = None, slug: str | None = None) -> RootQuery | None:
    """The row of ``plan(id:, slug:)`` (None: not exactly one of them given, null; a malformed id raises)."""
    plan_id = read_optional_id(id, "Plan", "id")
    if (plan_id is None) == (slug is None):
        return None
    include_inactive = context.actor.role is DomainRole.SUPER_ADMIN
    return RootQuery(Statement(plans.plan_statement, (plan_id, slug), (include_inactive,)), key=plan_id)


def plans_query(context: Any, include_inactive: bool = False, currency: str | None = None) -> RootQuery:
    """The rows ``plans`` lists (the SQL tier wraps the same statement in JSON)."""
    return RootQuery(catalog_source(Plan, plans.plan_order, include_inactive, currency))


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow_inactive_to_super_admins(),
        description="Plans in display order (sort order, then monthly price). Inactive ones only for super-admins.",
    )
    async def plans(
        self, info: Info, include_inactive: bool = False, currency: str | None = None
    ) -> list[PlanType] | None:
        try:
            query = plans_query(info.context, include_inactive, currency)
        except DomainBillingError as error:
            raise ClientError(error.message) from None
        return [PlanType.from_row(row) for row in await read_rows(info.context.db, query.statement)]

    @strawberry.field(extensions=allow(), description="One plan by id or slug (inactive ones for super-admins).")
    async def plan(
        self, info: Info, id: strawberry.ID | None = None, slug: str | None = None
    ) -> PlanType | None:
        query = plan_query(info.context, None, id, slug)
        row = await read_first(info.context.db, query.statement) if query is not None else None
        return PlanType.from_row(row) if row is not None else None


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN), description="Add a plan to the catalog.")
    async def create_plan(self, info: Info, input: CreatePlanInput) -> CreatePlanPayload | None:
        context = info.context
        spec = spec_from_input(PlanSpec, input, PLAN_INPUTS)
        return await CreatePlanPayload.of(plans.create_plan(context.db, context.actor, spec, now=context.now))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN), description="Change a plan; fields left out keep their values."
    )
    async def update_plan(self, info: Info, input: UpdatePlanInput) -> UpdatePlanPayload | None:
        context = info.context
        return await UpdatePlanPayload.of(lambda: plans.update_plan(
            context.db, context.actor, plan_id_of(input.id), patch_from_input(PlanPatch, input, PLAN_INPUTS),
            now=context.now, apply_to=input.apply_to or None))
