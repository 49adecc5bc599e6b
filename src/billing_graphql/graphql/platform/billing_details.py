"""Billing details: the type (on Organization and, as copied at finalization, on Invoice) and
``updateBillingDetails`` (owners; super-admins name the organization)."""

from __future__ import annotations

import strawberry

from billing_graphql.domain.billing_details import BillingDetailsValue
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.scope import organization_for
from billing_graphql.services.platform import billing_details


@strawberry.type(name="BillingDetails", description="Who invoices are addressed to.")
class BillingDetailsType:
    legal_name: str | None = strawberry.field(description="The buyer's registered name.")
    address: str | None = strawberry.field(description="Postal address; lines separated by newlines.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 code, e.g. ID.")
    tax_id: str | None = strawberry.field(description="The buyer's tax ID (NPWP in Indonesia).")
    language: str = strawberry.field(
        description="The language of the organization's documents (invoice PDFs): en (English, the default) "
                    "or id (Indonesian).")

    @classmethod
    def from_value(cls, value: BillingDetailsValue) -> BillingDetailsType:
        return cls(legal_name=value.legal_name, address=value.address, country=value.country, tax_id=value.tax_id,
                   language=value.language.value)


@strawberry.input
class UpdateBillingDetailsInput:
    legal_name: str | None = strawberry.field(default=None, description="Left out: kept; empty: cleared.")
    address: str | None = strawberry.field(default=None, description="Left out: kept; empty: cleared.")
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2; empty: cleared.")
    tax_id: str | None = strawberry.field(
        default=None, description="Left out: kept; empty: cleared. For country ID an NPWP of 15 or 16 digits."
    )
    language: str | None = strawberry.field(
        default=None, description="Left out: kept. en (English) or id (Indonesian): the language of its documents."
    )
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Super-admins: the organization to act on (required). Owners act on their own."
    )


UpdateBillingDetailsPayload = node_payload("UpdateBillingDetailsPayload", "billing_details", BillingDetailsType,
                                           to_node=BillingDetailsType.from_value)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN, DomainRole.OWNER),
        description="Change the organization's billing details; invoices finalized from now on carry them.",
    )
    async def update_billing_details(
        self, info: Info, input: UpdateBillingDetailsInput
    ) -> UpdateBillingDetailsPayload | None:
        context = info.context

        async def update() -> BillingDetailsValue:
            return await billing_details.update_billing_details(
                context.db, context.actor, organization_id=organization_for(info, input.organization_id),
                legal_name=input.legal_name, address=input.address, country=input.country, tax_id=input.tax_id,
                language=input.language, now=context.now, gateways=context.gateways,
            )

        return await UpdateBillingDetailsPayload.of(update())
