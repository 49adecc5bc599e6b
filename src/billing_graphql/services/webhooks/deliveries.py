"""Deliveries you can see and replay: the list (paged in SQL), a redelivery, a test event."""

from __future__ import annotations

from typing import Any

import uuid
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import DeliveryStatus, OutboxEvent, WebhookDelivery, WebhookEndpoint
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import not_found
from billing_graphql.services.webhooks.objects import event_data
from billing_graphql.services.platform.audit import record_audit
from billing_graphql.services.webhooks.dispatch import new_delivery

TEST_EVENT = "webhook.test"


def _scoped(statement, actor: Actor):
    return statement if actor.is_super_admin else _of_organization(statement, actor.organization_id)


def _of_organization(statement, organization_id: uuid.UUID | None):
    """The deliveries of ``organization_id``'s endpoints."""
    return statement.join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id).where(
        WebhookEndpoint.organization_id == organization_id)


def deliveries_statement(every_organization: bool, organization_id: uuid.UUID | None,
                         endpoint_id: uuid.UUID | None, status: DeliveryStatus | None) -> Any:
    """Deliveries newest first: of every organization's endpoints (super-admins) or of ``organization_id``'s
    (the actor's own), one endpoint's or all, of one status or all."""
    statement = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    if not every_organization:
        statement = _of_organization(statement, organization_id)
    if endpoint_id is not None:
        statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return statement


async def get_deliveries(db: Database, actor: Actor, ids: list[uuid.UUID]) -> dict[uuid.UUID, WebhookDelivery]:
    async with db.read() as session:
        rows = (await session.scalars(_scoped(select(WebhookDelivery), actor).where(WebhookDelivery.id.in_(ids)))).all()
    return {row.id: row for row in rows}


async def redeliver(db: Database, actor: Actor, delivery_id: uuid.UUID, *, now: datetime) -> WebhookDelivery:
    """Send the same event again (same ``webhook-id`` and body), now, with a fresh retry schedule.
    A delivery that is PENDING already is simply made due now."""
    async with db.write() as session:
        delivery = await session.scalar(
            _scoped(select(WebhookDelivery), actor).where(WebhookDelivery.id == delivery_id)
            .with_for_update(of=WebhookDelivery).execution_options(populate_existing=True)
        )
        if delivery is None:
            raise not_found("Webhook delivery", "deliveryId")
        if delivery.status is not DeliveryStatus.PENDING:
            delivery.status = DeliveryStatus.PENDING
            delivery.schedule_start = delivery.attempts
        delivery.next_attempt_at = now
        delivery.updated_at = now
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        record_audit(session, actor=actor, action="webhook_delivery.redelivered", object_type="WebhookDelivery",
                     object_id=delivery.id, organization_id=endpoint.organization_id, now=now)
    return delivery


async def send_test(db: Database, actor: Actor, endpoint_id: uuid.UUID, *, now: datetime) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint alone (other endpoints never see it)."""
    async with db.write() as session:
        statement = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if not actor.is_super_admin:
            statement = statement.where(WebhookEndpoint.organization_id == actor.organization_id)
        endpoint = await session.scalar(statement)
        if endpoint is None:
            raise not_found("Webhook endpoint", "endpointId")
        event = OutboxEvent(
            organization_id=endpoint.organization_id, event_type=TEST_EVENT,
            payload=event_data("WebhookEndpoint", endpoint, message="A test event from billing-graphql.",
                               sent_at=now),
            created_at=now, dispatched_at=now,  # fanned out here, to this endpoint only
        )
        session.add(event)
        await session.flush()
        delivery = new_delivery(endpoint.id, event, now)
        session.add(delivery)
        await session.flush()
    return delivery
