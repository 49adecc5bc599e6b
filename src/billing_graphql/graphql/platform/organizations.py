"""Root fields for the viewer, organizations and API keys."""

from __future__ import annotations

from typing import Any

import strawberry

from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.services.pagination import read_first, read_page, read_rows

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.common import (
    Role,
    attempt,
    connection_from_page,
    decode_id,
    offset_after,
    page_size,
)
from billing_graphql.graphql.ids import read_id
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.scope import read_scope
from billing_graphql.graphql.platform.types import (
    ApiKeyType,
    OrganizationConnection,
    OrganizationType,
    Viewer,
)
from billing_graphql.services.platform import api_keys
from billing_graphql.services.platform import organizations


@strawberry.input
class CreateOrganizationInput:
    name: str
    external_id: str = strawberry.field(description="The SaaS's own id for this tenant.")
    currency: str | None = strawberry.field(
        default=None, description="ISO 4217 code it is billed in; default BILLING_DEFAULT_CURRENCY (IDR).")


CreateOrganizationPayload = node_payload("CreateOrganizationPayload", "organization", OrganizationType)


@strawberry.input
class UpdateOrganizationInput:
    id: strawberry.ID
    name: str | None = None
    currency: str | None = strawberry.field(
        default=None, description="Changes only while the organization has no live subscription (else VALIDATION).")


UpdateOrganizationPayload = node_payload("UpdateOrganizationPayload", "organization", OrganizationType)


@strawberry.input
class CreateApiKeyInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for OWNER, ADMIN and MEMBER keys; absent for SUPER_ADMIN and PARTNER."
    )
    role: Role
    label: str = ""


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyType | None = None
    key: str | None = strawberry.field(default=None, description="The secret key: shown this once, store it now.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


RevokeApiKeyPayload = node_payload("RevokeApiKeyPayload", "api_key", ApiKeyType)


def organizations_query(context: Any, first: int | None = 10, after: str | None = None) -> RootQuery:
    """The statement and page of ``organizations`` (the SQL tier wraps the same statement in JSON)."""
    return RootQuery(Statement(organizations.organizations_statement, ()), page_size(first), offset_after(after))


def organization_query(context: Any, parent: Any, id: strawberry.ID) -> RootQuery:
    """The row of ``organization(id:)`` (a malformed id raises, as the resolver's read does)."""
    organization_id = read_id(id, "Organization")
    return RootQuery(Statement(organizations.organization_statement, (organization_id,)), key=organization_id)


def api_keys_query(context: Any, organization_id: strawberry.ID | None = None) -> RootQuery | None:
    """The rows ``apiKeys`` lists (None: none)."""
    readable, scope = context.actor.listing_scope(read_scope(context.actor, organization_id, across=True))
    return RootQuery(Statement(api_keys.api_keys_statement, (scope,))) if readable else None


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(), description="The caller: role and organization.")
    def viewer(self, info: Info) -> Viewer | None:
        actor = info.context.actor
        return Viewer(role=actor.role, subject=actor.subject, organization_id=actor.organization_id)

    @strawberry.field(extensions=allow(DomainRole.SUPER_ADMIN))
    async def organizations(
        self, info: Info, first: int | None = 10, after: str | None = None
    ) -> OrganizationConnection | None:
        query = organizations_query(info.context, first, after)
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(OrganizationConnection, page, OrganizationType.from_row)

    @strawberry.field(extensions=allow(DomainRole.SUPER_ADMIN))
    async def organization(self, info: Info, id: strawberry.ID) -> OrganizationType | None:
        row = await read_first(info.context.db, organization_query(info.context, None, id).statement)
        return OrganizationType.from_row(row) if row is not None else None  # a well-formed id of no organization

    @strawberry.field(
        extensions=allow(DomainRole.SUPER_ADMIN, DomainRole.OWNER),
        description="API keys of an organization (owners: their own; super-admins: of the one named, or all). "
                    "Admins manage billing, not credentials.",
    )
    async def api_keys(self, info: Info, organization_id: strawberry.ID | None = None) -> list[ApiKeyType] | None:
        query = api_keys_query(info.context, organization_id)
        rows = await read_rows(info.context.db, query.statement) if query is not None else []
        return [ApiKeyType.from_row(row) for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN))
    async def create_organization(self, info: Info, input: CreateOrganizationInput) -> CreateOrganizationPayload | None:
        context = info.context
        return await CreateOrganizationPayload.of(organizations.create_organization(
            context.db, context.actor, name=input.name, external_id=input.external_id, now=context.now,
            currency=input.currency if input.currency is not None else context.settings.default_currency,
        ))

    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN),
                         description="Rename an organization or change its currency (while it has no live "
                                     "subscription).")
    async def update_organization(self, info: Info, input: UpdateOrganizationInput) -> UpdateOrganizationPayload | None:
        context = info.context
        return await UpdateOrganizationPayload.of(lambda: organizations.update_organization(
            context.db, context.actor, organization_id=decode_id(input.id, "Organization"), name=input.name,
            currency=input.currency, now=context.now))

    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN, DomainRole.OWNER),
        description="Create an API key. Owners may create OWNER, ADMIN and MEMBER keys for their organization.",
    )
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload | None:
        context = info.context

        async def create():
            organization_id = (
                decode_id(input.organization_id, "Organization", "organizationId")
                if input.organization_id
                else None
            )
            return await api_keys.create_api_key(
                context.db,
                context.actor,
                role=DomainRole(input.role.value),
                organization_id=organization_id,
                label=input.label,
                now=context.now,
            )

        created, errors = await attempt(create())
        if created is None:
            return CreateApiKeyPayload(errors=errors)
        row, plain = created
        return CreateApiKeyPayload(api_key=ApiKeyType.from_row(row), key=plain)

    @strawberry.mutation(extensions=allow(DomainRole.SUPER_ADMIN, DomainRole.OWNER))
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> RevokeApiKeyPayload | None:
        context = info.context

        async def revoke():
            key_id = decode_id(input.id, "ApiKey")
            return await api_keys.revoke_api_key(context.db, context.actor, key_id=key_id, now=context.now)

        return await RevokeApiKeyPayload.of(revoke())
