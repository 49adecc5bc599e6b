"""The webhook types: an endpoint (never its secret) and a delivery with its last answer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from billing_graphql.db.models import DeliveryStatus
from billing_graphql.db.models import WebhookDelivery as DeliveryRow
from billing_graphql.db.models import WebhookEndpoint as EndpointRow
from billing_graphql.domain.errors import BillingError as DomainBillingError
from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.columns import Form, columns
from billing_graphql.graphql.common import from_row, read_node_ids
from billing_graphql.graphql.context import Info
from billing_graphql.services.webhooks import deliveries, endpoints

WebhookDeliveryStatus = strawberry.enum(DeliveryStatus, name="WebhookDeliveryStatus")
_MANAGERS = frozenset({DomainRole.SUPER_ADMIN, DomainRole.OWNER, DomainRole.ADMIN})


def _manager(info: Info):
    actor = info.context.actor
    return actor if actor is not None and actor.role in _MANAGERS else None


@strawberry.type(name="WebhookEndpoint", description="Where events are POSTed, signed (Standard Webhooks).")
class WebhookEndpointNode(relay.Node):
    id: relay.NodeID[str]
    url: str
    description: str
    events: list[str] = strawberry.field(description="Event types received: exact ('invoice.paid'), a family "
                                                     "('invoice.*') or all ('*').")
    enabled: bool
    disabled_reason: str | None = strawberry.field(description="Why it was disabled (410, 5 days of failures, a user).")
    organization_id: relay.GlobalID | None = strawberry.field(
        description="The organization whose events it receives; null: platform-wide (every organization's).")
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation: until when the old secret still signs beside the new one.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: EndpointRow) -> WebhookEndpointNode:
        return from_row(cls, row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = _manager(info)
        found = []
        for key in read_node_ids(node_ids):
            row = None
            if actor is not None:
                try:
                    row = await endpoints.get_endpoint(info.context.db, actor, key)
                except DomainBillingError:
                    row = None
            found.append(cls.from_row(row) if row is not None else None)
        return found


@strawberry.type(name="WebhookDelivery", description="One event sent to one endpoint, with its attempts.")
class WebhookDeliveryNode(relay.Node):
    id: relay.NodeID[str]
    endpoint_id: relay.GlobalID
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    last_status_code: int | None = strawberry.field(description="The HTTP status of the last attempt; null "
                                                                "when it got no answer (timeout, refused).")
    last_response_body: str | None = strawberry.field(description="The last answer's body, at most 2 KB.")
    last_error: str | None = strawberry.field(description="Why the last attempt got no answer.")
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DeliveryRow) -> WebhookDeliveryNode:
        return from_row(cls, row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        actor = _manager(info)
        keys = read_node_ids(node_ids)
        rows = await deliveries.get_deliveries(info.context.db, actor, keys) if actor else {}
        return [cls.from_row(rows[key]) if key in rows else None for key in keys]


def _global_id_or_null(type_name: str, column: str) -> Form:
    """The global id of a nullable key column (a ``relay.GlobalID``), or null."""
    return Form(
        lambda row: None if getattr(row, column) is None else relay.GlobalID(type_name, str(getattr(row, column))),
        lambda sql, row, *parents: (f"CASE WHEN {row}.{column} IS NULL THEN NULL "
                                    f"ELSE {sql.global_id(type_name, f'{row}.{column}')} END"))


columns(
    WebhookEndpointNode, EndpointRow,
    events=Form(lambda row: list(row.event_types), lambda sql, row, *parents: sql.json_value(f"{row}.event_types")),
    organization_id=_global_id_or_null("Organization", "organization_id"),
)
columns(
    WebhookDeliveryNode, DeliveryRow,
    endpoint_id=_global_id_or_null("WebhookEndpoint", "endpoint_id"),  # never null: the key is required
    next_attempt_at=Form(  # only while a retry is due
        lambda row: row.next_attempt_at if row.status is DeliveryStatus.PENDING else None,
        lambda sql, row, *parents: (f"CASE WHEN {row}.status = '{DeliveryStatus.PENDING.name}' "
                                    f"THEN {sql.datetime(f'{row}.next_attempt_at')} ELSE NULL END")),
)


@strawberry.type
class WebhookDeliveryConnection(relay.Connection[WebhookDeliveryNode]):
    """Deliveries, newest first, paged."""
