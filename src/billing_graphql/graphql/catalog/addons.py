"""Root fields of the add-on catalog: list it (tenants: active ones), create and update (super-admins)."""

from __future__ import annotations

from typing import Any

from decimal import Decimal

import strawberry

from billing_graphql.db.models import Addon
from billing_graphql.graphql.columns import RootQuery
from billing_graphql.graphql.catalog.types import catalog_source
from billing_graphql.services.pagination import read_rows

from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.errors import BillingErrorCode as DomainBillingErrorCode
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.permissions import READERS, allow
from billing_graphql.graphql.catalog.plans import allow_inactive_to_super_admins
from billing_graphql.graphql.catalog.types import AddonType, AddonUnit
from billing_graphql.graphql.common import decode_id
from billing_graphql.graphql.inputs import patch_from_input, spec_from_input
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.services.catalog import addons
from billing_graphql.services.catalog.addons import AddonPatch, AddonSpec


@strawberry.input(description="A new add-on. Amounts are major units of `currency`.")
class CreateAddonInput:
    name: str
    slug: str = strawberry.field(description="Lower-case letters, digits and hyphens; unique.")
    price_monthly: Decimal
    currency: str = "IDR"
    price_annual: Decimal | None = strawberry.field(default=None, description="Default: 10 x monthly.")
    unit: AddonUnit = AddonUnit.FLAT
    description: str = ""
    is_active: bool = True
    sort_order: int = 0


@strawberry.input(description="Changes to an add-on: a field left out keeps its value.")
class UpdateAddonInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="Only with both prices given, and only while no subscription has it."
    )
    price_monthly: Decimal | None = strawberry.UNSET
    price_annual: Decimal | None = strawberry.UNSET
    unit: AddonUnit | None = strawberry.UNSET
    is_active: bool | None = strawberry.UNSET
    sort_order: int | None = strawberry.UNSET


CreateAddonPayload = node_payload("CreateAddonPayload", "addon", AddonType)
UpdateAddonPayload = node_payload("UpdateAddonPayload", "addon", AddonType)


def _addon_id(global_id: strawberry.ID):
    try:
        return decode_id(global_id, "Addon")
    except DomainBillingError:
        raise DomainBillingError(DomainBillingErrorCode.ADDON_NOT_FOUND, "Add-on not found.", field="id") from None


def addons_query(context: Any, include_inactive: bool = False, currency: str | None = None) -> RootQuery:
    """The rows ``addons`` lists (the SQL tier wraps the same statement in JSON)."""
    return RootQuery(catalog_source(Addon, addons.addon_order, include_inactive, currency))


@strawberry.type
class Query:
    @strawberry.field(
        extensions=allow_inactive_to_super_admins(*READERS),
        description="Add-ons in display order (sort order, then monthly price). Inactive ones only for super-admins.",
    )
    async def addons(
        self, info: Info, include_inactive: bool = False, currency: str | None = None
    ) -> list[AddonType] | None:
        try:
            query = addons_query(info.context, include_inactive, currency)
        except DomainBillingError as error:
            raise ClientError(error.message) from None
        return [AddonType.from_row(row) for row in await read_rows(info.context.db, query.statement)]


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN), description="Add an add-on to the catalog.")
    async def create_addon(self, info: Info, input: CreateAddonInput) -> CreateAddonPayload | None:
        context = info.context
        spec = spec_from_input(AddonSpec, input)
        return await CreateAddonPayload.of(addons.create_addon(context.db, context.actor, spec, now=context.now))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN), description="Change an add-on; fields left out keep their values."
    )
    async def update_addon(self, info: Info, input: UpdateAddonInput) -> UpdateAddonPayload | None:
        context = info.context
        return await UpdateAddonPayload.of(lambda: addons.update_addon(
            context.db, context.actor, _addon_id(input.id), patch_from_input(AddonPatch, input), now=context.now))
