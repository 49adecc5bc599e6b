"""createBillingPortalSession: a short-lived link to the gateway's own billing page;
revokeBillingPortalSessions: every link of an organization issued so far stops working."""

from __future__ import annotations

from datetime import datetime

import strawberry

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.common import attempt, decode_id
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.permissions import allow
from billing_graphql.services.portal import sessions as portal


@strawberry.input
class CreateBillingPortalSessionInput:
    return_url: str | None = strawberry.field(
        default=None, description="Where the portal's back link goes (http or https); default BILLING_PUBLIC_URL.")


@strawberry.type
class CreateBillingPortalSessionPayload:
    url: str | None = strawberry.field(default=None, description="Open this in the browser; it expires soon.")
    expires_at: datetime | None = None
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeBillingPortalSessionsInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Owners and admins: their own organization (the default); super-admins: required.")


@strawberry.type
class RevokeBillingPortalSessionsPayload:
    revoked: bool = strawberry.field(default=False, description="Every portal link issued so far has stopped working.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(DomainRole.OWNER, DomainRole.ADMIN))
    async def create_billing_portal_session(
        self, info: Info, input: CreateBillingPortalSessionInput | None = None
    ) -> CreateBillingPortalSessionPayload | None:
        context = info.context
        session, errors = await attempt(
            portal.create_portal_session(
                context.db, context.actor, return_url=input.return_url if input else None, settings=context.settings,
                now=context.now,
            )
        )
        if session is None:
            return CreateBillingPortalSessionPayload(errors=errors)
        return CreateBillingPortalSessionPayload(url=session.url, expires_at=session.expires_at)

    @strawberry.mutation(
        extensions=allow(DomainRole.OWNER, DomainRole.ADMIN, DomainRole.SUPER_ADMIN),
        description="End every billing portal link of the organization issued so far (links issued later work).",
    )
    async def revoke_billing_portal_sessions(
        self, info: Info, input: RevokeBillingPortalSessionsInput | None = None
    ) -> RevokeBillingPortalSessionsPayload | None:
        context = info.context

        async def revoke():
            requested = input.organization_id if input else None
            organization_id = decode_id(requested, "Organization", "organizationId") if requested else None
            return await portal.revoke_portal_sessions(context.db, context.actor, organization_id=organization_id,
                                                       now=context.now)

        revoked, errors = await attempt(revoke)
        return RevokeBillingPortalSessionsPayload(revoked=revoked is not None, errors=errors)
