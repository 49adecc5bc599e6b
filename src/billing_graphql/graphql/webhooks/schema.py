"""Root fields for webhooks: endpoints (owners and admins for their organization, super-admins
also platform-wide), deliveries you can see and replay, a test event."""

from __future__ import annotations

from typing import Any

from datetime import UTC, datetime

import strawberry

from billing_graphql.graphql.columns import RootQuery, Statement
from billing_graphql.services.pagination import read_page, read_rows

from billing_graphql.graphql.common import attempt, connection_from_page, offset_after, page_size
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import BillingError
from billing_graphql.graphql.ids import decode_global_id, read_optional_id
from billing_graphql.graphql.scope import read_scope
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.permissions import MANAGERS, allow
from billing_graphql.graphql.webhooks.types import (
    WebhookDeliveryConnection,
    WebhookDeliveryNode,
    WebhookDeliveryStatus,
    WebhookEndpointNode,
)
from billing_graphql.services.webhooks import deliveries, endpoints


def _now() -> datetime:
    # Webhook times are the delivery worker's: the wall clock (not the billing test clock).
    return datetime.now(UTC)


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https:// (http:// and local addresses outside production mode).")
    events: list[str] = strawberry.field(description="Event types: 'invoice.paid', 'invoice.*' or '*'.")
    description: str | None = None
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Super-admins: the organization; omitted: a platform-wide endpoint.")


@strawberry.type
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpointNode | None = None
    secret: str | None = strawberry.field(default=None, description="The whsec_ signing secret, shown this once.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


UpdateWebhookEndpointPayload = node_payload("UpdateWebhookEndpointPayload", "webhook_endpoint", WebhookEndpointNode)


@strawberry.input
class DeleteWebhookEndpointInput:
    id: strawberry.ID


DeleteWebhookEndpointPayload = node_payload("DeleteWebhookEndpointPayload", "deleted_webhook_endpoint_id",
                                            strawberry.ID)


@strawberry.input
class RotateWebhookSecretInput:
    endpoint_id: strawberry.ID


@strawberry.type
class RotateWebhookSecretPayload:
    webhook_endpoint: WebhookEndpointNode | None = None
    secret: str | None = strawberry.field(default=None, description="The new whsec_ secret, shown this once; the "
                                                                     "old one keeps signing for 24 hours.")
    errors: list[BillingError] = strawberry.field(default_factory=list)


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: strawberry.ID


@strawberry.input
class SendTestWebhookInput:
    endpoint_id: strawberry.ID


WebhookDeliveryPayload = node_payload("WebhookDeliveryPayload", "webhook_delivery", WebhookDeliveryNode)


def _endpoint_id(value: str, field: str = "id"):
    return decode_global_id(value, "WebhookEndpoint", field, what="Webhook endpoint")


def webhook_endpoints_query(context: Any, organization_id: strawberry.ID | None = None) -> RootQuery | None:
    """The rows ``webhookEndpoints`` lists (None: none); the SQL tier wraps the same statement in JSON."""
    readable, scope = context.actor.listing_scope(read_scope(context.actor, organization_id, across=True))
    return RootQuery(Statement(endpoints.endpoints_statement, (scope,))) if readable else None


def webhook_deliveries_query(context: Any, endpoint_id: strawberry.ID | None = None, status: Any = None,
                             first: int | None = 10, after: str | None = None) -> RootQuery:
    """The statement and page of ``webhookDeliveries``."""
    size, offset = page_size(first), offset_after(after)
    endpoint = read_optional_id(endpoint_id, "WebhookEndpoint", "endpointId")
    actor = context.actor
    return RootQuery(Statement(deliveries.deliveries_statement, (actor.organization_id, endpoint, status),
                               (actor.is_super_admin,)), size, offset)


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(*MANAGERS), description="Webhook endpoints: your organization's; "
                      "super-admins: one organization's (organizationId) or all, platform-wide ones included.")
    async def webhook_endpoints(self, info: Info, organization_id: strawberry.ID | None = None
                                ) -> list[WebhookEndpointNode] | None:
        query = webhook_endpoints_query(info.context, organization_id)
        rows = await read_rows(info.context.db, query.statement) if query is not None else []
        return [WebhookEndpointNode.from_row(row) for row in rows]

    @strawberry.field(extensions=allow(*MANAGERS), description="Deliveries, newest first: one endpoint's, or all "
                      "you may see.")
    async def webhook_deliveries(
        self, info: Info, endpoint_id: strawberry.ID | None = None, status: WebhookDeliveryStatus | None = None,
        first: int | None = 10, after: str | None = None,
    ) -> WebhookDeliveryConnection | None:
        query = webhook_deliveries_query(info.context, endpoint_id, status, first, after)
        page = await read_page(info.context.db, query.statement, first=query.first, offset=query.offset)
        return connection_from_page(WebhookDeliveryConnection, page, WebhookDeliveryNode.from_row)


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=allow(*MANAGERS))
    async def create_webhook_endpoint(self, info: Info, input: CreateWebhookEndpointInput
                                      ) -> CreateWebhookEndpointPayload | None:
        context = info.context

        async def run():
            organization = (decode_global_id(input.organization_id, "Organization", "organizationId",
                                             what="Organization") if input.organization_id else None)
            return await endpoints.create_endpoint(
                context.db, context.actor, url=input.url, events=input.events, description=input.description,
                organization_id=organization, production=context.settings.production, now=_now())

        result, errors = await attempt(run())
        if result is None:
            return CreateWebhookEndpointPayload(errors=errors)
        row, secret = result
        return CreateWebhookEndpointPayload(webhook_endpoint=WebhookEndpointNode.from_row(row), secret=secret)

    @strawberry.mutation(extensions=allow(*MANAGERS))
    async def update_webhook_endpoint(self, info: Info, input: UpdateWebhookEndpointInput
                                      ) -> UpdateWebhookEndpointPayload | None:
        context = info.context
        changes = endpoints.EndpointChanges(url=input.url, events=input.events, description=input.description,
                                            enabled=input.enabled)

        async def run():
            return await endpoints.update_endpoint(context.db, context.actor, _endpoint_id(input.id), changes,
                                                   production=context.settings.production, now=_now())

        return await UpdateWebhookEndpointPayload.of(run())

    @strawberry.mutation(extensions=allow(*MANAGERS))
    async def delete_webhook_endpoint(self, info: Info, input: DeleteWebhookEndpointInput
                                      ) -> DeleteWebhookEndpointPayload | None:
        context = info.context

        async def run():
            return await endpoints.delete_endpoint(context.db, context.actor, _endpoint_id(input.id), now=_now())

        return await DeleteWebhookEndpointPayload.of(run(), lambda _deleted: strawberry.ID(input.id))

    @strawberry.mutation(extensions=allow(*MANAGERS))
    async def rotate_webhook_secret(self, info: Info, input: RotateWebhookSecretInput
                                    ) -> RotateWebhookSecretPayload | None:
        context = info.context

        async def run():
            return await endpoints.rotate_secret(context.db, context.actor,
                                                 _endpoint_id(input.endpoint_id, "endpointId"), now=_now())

        result, errors = await attempt(run())
        if result is None:
            return RotateWebhookSecretPayload(errors=errors)
        row, secret = result
        return RotateWebhookSecretPayload(webhook_endpoint=WebhookEndpointNode.from_row(row), secret=secret)

    @strawberry.mutation(extensions=allow(*MANAGERS), description="Send a delivery's event again (same id and "
                         "body), now, with a fresh retry schedule.")
    async def redeliver_webhook(self, info: Info, input: RedeliverWebhookInput) -> WebhookDeliveryPayload | None:
        context = info.context

        async def run():
            delivery_id = decode_global_id(input.delivery_id, "WebhookDelivery", "deliveryId",
                                           what="Webhook delivery")
            return await deliveries.redeliver(context.db, context.actor, delivery_id, now=_now())

        return await WebhookDeliveryPayload.of(run())

    @strawberry.mutation(extensions=allow(*MANAGERS), description="Send a webhook.test event to one endpoint.")
    async def send_test_webhook(self, info: Info, input: SendTestWebhookInput) -> WebhookDeliveryPayload | None:
        context = info.context

        async def run():
            return await deliveries.send_test(context.db, context.actor,
                                              _endpoint_id(input.endpoint_id, "endpointId"), now=_now())

        return await WebhookDeliveryPayload.of(run())
