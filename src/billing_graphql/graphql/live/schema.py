"""The subscription root (``LiveSubscription``): billingEvents, usageUpdated, invoiceUpdated,
usageSnapshotsUpdated, served over WebSocket (``graphql-transport-ws``, graphql.live.transport).

Every message is sent after the transaction that caused it committed (services.live.signals), to
sockets of the organization it belongs to only (services.live.hub). The root is not named
``Subscription``: that is the billing object's name (DESIGN.md section 2).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry

from billing_graphql.domain.roles import Role
from billing_graphql.domain.webhooks import clean_event_filters, matches
from billing_graphql.graphql.billing.types import InvoiceType
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError, Forbidden
from billing_graphql.graphql.ids import NOWHERE, read_id
from billing_graphql.graphql.live.types import LIVE_EVENT_ID, BillingEvent, UsageUpdate
from billing_graphql.graphql.loaders import Loaders
from billing_graphql.graphql.permissions import MANAGERS, READERS, allow
from billing_graphql.graphql.scope import read_scope
from billing_graphql.graphql.usage.types import UsageSnapshot
from billing_graphql.services.live import access
from billing_graphql.services.live.hub import ReplayRefused, Subscriber, replay
from billing_graphql.services.pagination import MAX_PAGE_SIZE
from billing_graphql.services.platform.clock import current_time
from billing_graphql.services.usage import partners
from billing_graphql.services.webhooks.dispatch import webhook_id
from billing_graphql.services.webhooks.objects import global_id

USAGE_EVERY_SECONDS = 1.0  # usageUpdated: at most one message per metric per second
SNAPSHOTS_EVERY_SECONDS = 5.0  # usageSnapshotsUpdated: at most one message per organization per 5 s
ORGANIZATION_HELP = "Super-admins: the organization (required). Tenants receive their own."


OVER_WEBSOCKET = "Subscriptions run over WebSocket (graphql-transport-ws) on /graphql."


def _live(info: Info) -> Any:
    live = info.context.live
    if live is None:
        raise ClientError(OVER_WEBSOCKET)
    return live


def _organization(info: Info, organization_id: strawberry.ID | None) -> uuid.UUID:
    scope = read_scope(info.context.actor, organization_id)
    if scope is None or scope == NOWHERE:
        raise ClientError("No organization with this organizationId.")
    return scope


def _event_uuid(value: str) -> uuid.UUID:
    text = value[4:] if value.startswith("msg_") else value
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ClientError("`after` must be an event id (BillingEvent.id, msg_...).") from None


async def _now(info: Info):
    return await current_time(info.context.db, test_clock=info.context.settings.test_clock)


def _mentions(value: Any, wanted: str) -> bool:
    """Whether a webhook payload names ``wanted`` (a global id) anywhere."""
    if isinstance(value, dict):
        return any(_mentions(item, wanted) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, wanted) for item in value)
    return value == wanted


@strawberry.type(name="LiveSubscription", description="Live updates over WebSocket (graphql-transport-ws on /graphql).")
class Subscription:
    @strawberry.subscription(
        extensions=allow(*MANAGERS),
        description="The organization's billing events as they commit: the same `type` and `data` as its webhooks. "
                    "`types`: exact types or families (`invoice.*`); `after`: an event id to resume after (replays "
                    "what was missed from the outbox, at most 24 hours back).")
    async def billing_events(
        self, info: Info, types: list[str] | None = None, after: strawberry.ID | None = None,
        organization_id: Annotated[strawberry.ID | None, strawberry.argument(description=ORGANIZATION_HELP)] = None,
    ) -> AsyncGenerator[BillingEvent, None]:
        live = _live(info)
        organization = _organization(info, organization_id)
        try:
            filters = clean_event_filters(types) if types is not None else ["*"]
        except ValueError as exc:
            raise ClientError(f"types: {exc}") from None
        resume = _event_uuid(after) if after is not None else None
        subscriber = live.hub.add(Subscriber(frozenset({organization}), events=True, usage=False, on_close=live.close))
        try:
            replayed: set[uuid.UUID] = set()
            if resume is not None:
                try:
                    missed = await replay(info.context.db, organization, resume, await _now(info))
                except ReplayRefused as exc:
                    raise ClientError(str(exc)) from None
                for event in missed:
                    replayed.add(event.id)
                    if matches(filters, event.type):
                        LIVE_EVENT_ID.set(webhook_id(event.id))
                        yield BillingEvent.of(event)
            while (event := await subscriber.next_event()) is not None:
                if event.id in replayed or not matches(filters, event.type):
                    continue
                LIVE_EVENT_ID.set(webhook_id(event.id))
                yield BillingEvent.of(event)
        finally:
            live.hub.remove(subscriber)

    @strawberry.subscription(
        extensions=allow(*READERS),
        description="After each recordUsage that changes a counter: the changed metrics' use (one message per metric, "
                    "at most one per metric per second). `metrics`: codes to follow (all when omitted).")
    async def usage_updated(
        self, info: Info, metrics: list[str] | None = None,
        organization_id: Annotated[strawberry.ID | None, strawberry.argument(description=ORGANIZATION_HELP)] = None,
    ) -> AsyncGenerator[UsageUpdate, None]:
        live = _live(info)
        organization = _organization(info, organization_id)
        db = info.context.db
        if metrics is not None:
            unknown = sorted(set(metrics) - await access.metric_codes(db))
            if unknown:
                raise ClientError(f"metrics: unknown metric code(s) {', '.join(unknown)}.")
        wanted = set(metrics) if metrics is not None else None
        subscriber = live.hub.add(Subscriber(frozenset({organization}), events=False, usage=True, on_close=live.close))
        try:
            seen = {item.metric.code: item.use.used for item in (await access.usage_of(db, organization,
                                                                                      await _now(info))).metrics}
            last = -USAGE_EVERY_SECONDS
            while await subscriber.next_usage() is not None:
                wait = last + USAGE_EVERY_SECONDS - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # later changes join this message
                subscriber.take_usage()
                now = await _now(info)
                usage = await access.usage_of(db, organization, now)
                last = time.monotonic()
                for item in usage.metrics:
                    code = item.metric.code
                    if seen.get(code) == item.use.used or (wanted is not None and code not in wanted):
                        seen[code] = item.use.used
                        continue
                    seen[code] = item.use.used
                    yield UsageUpdate.of(item, now)
        finally:
            live.hub.remove(subscriber)

    @strawberry.subscription(
        extensions=allow(*MANAGERS),
        description="One invoice: its current state first, then again after each change of its status "
                    "(a checkout page waits for PAID). Each later message carries `extensions.eventId`.")
    async def invoice_updated(self, info: Info, id: strawberry.ID) -> AsyncGenerator[InvoiceType, None]:
        live = _live(info)
        actor, db = info.context.actor, info.context.db
        invoice_id = read_id(id, "Invoice")
        scope = None if actor.is_super_admin else actor.organization_id
        row = await access.invoice_state(db, invoice_id, scope)
        if row is None:
            raise ClientError("No invoice with this id.")
        subscriber = live.hub.add(Subscriber(frozenset({row.organization_id}), events=True, usage=False,
                                             on_close=live.close))
        wanted = global_id("Invoice", invoice_id)
        try:
            row = await access.invoice_state(db, invoice_id, scope)  # after subscribing: no change falls between
            if row is None:
                return
            status = row.status
            yield InvoiceType.from_row(row)
            while (event := await subscriber.next_event()) is not None:
                if not _mentions(event.data, wanted):
                    continue
                row = await access.invoice_state(db, invoice_id, scope)
                if row is None or row.status == status:
                    continue
                status = row.status
                info.context.loaders = Loaders(db)  # nested fields read the invoice as it is now
                LIVE_EVENT_ID.set(webhook_id(event.id))
                yield InvoiceType.from_row(row)
        finally:
            live.hub.remove(subscriber)

    @strawberry.subscription(
        extensions=allow(Role.SUPER_ADMIN, Role.PARTNER),
        description="Partners: usage snapshots of granted organizations as their usage changes, at most one per "
                    "organization per 5 s. `organizationIds`: those (all granted, or FORBIDDEN); without: every "
                    "organization granted when subscribing. Withdrawing a grant closes the socket (4403).")
    async def usage_snapshots_updated(
        self, info: Info, organization_ids: list[strawberry.ID] | None = None,
    ) -> AsyncGenerator[UsageSnapshot, None]:
        live = _live(info)
        actor, db = info.context.actor, info.context.db
        if organization_ids is None:
            if actor.is_super_admin:
                raise ClientError("Super-admins name the organizations: pass organizationIds.")
            requested = await access.granted_organizations(db, actor)
        else:
            if len(organization_ids) > MAX_PAGE_SIZE:
                raise ClientError(f"At most {MAX_PAGE_SIZE} organizationIds.")
            requested = [read_id(item, "Organization", "organizationIds") for item in organization_ids]
        organizations = frozenset(requested)
        if organizations and not await access.still_granted(db, actor, organizations):
            raise Forbidden("Forbidden: an organization asked for is not granted to this key.")
        subscriber = live.hub.add(Subscriber(organizations, events=False, usage=True, on_close=live.close))
        unwatch = live.require(lambda: access.still_granted(db, actor, organizations))
        try:
            due: dict[uuid.UUID, float] = {}
            pending: set[uuid.UUID] = set()
            while True:
                if not pending:
                    changed = await subscriber.next_usage()
                    if changed is None:
                        return
                    pending |= changed
                pending |= subscriber.take_usage()
                clock = time.monotonic()
                ready = [organization for organization in pending if due.get(organization, 0) <= clock]
                if not ready:
                    await asyncio.sleep(min(due[organization] for organization in pending) - clock)
                    continue
                try:
                    snapshots = await partners.snapshots_of(db, actor, ready, await _now(info), None)
                except partners.SnapshotsForbidden:
                    live.close(4403, "Forbidden: access to what this socket subscribed to was withdrawn")
                    return
                pending.difference_update(ready)
                for organization in ready:
                    due[organization] = clock + SNAPSHOTS_EVERY_SECONDS
                for snapshot in snapshots:
                    yield UsageSnapshot.of(snapshot)
        finally:
            unwatch()
            live.hub.remove(subscriber)
