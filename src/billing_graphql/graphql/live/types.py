"""Live subscription types, and the extension that puts an event's id on the message it produced."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON

from billing_graphql.graphql.catalog.plan_types import Metric
from billing_graphql.graphql.scalars import BigInt
from billing_graphql.services.live.hub import LiveEvent
from billing_graphql.services.usage.reading import MetricUse
from billing_graphql.services.webhooks.dispatch import webhook_id

#: The id of the outbox event behind the message a subscription is about to send (set by the
#: resolver in its operation's task, read back by ``LiveEventIds`` in the same task).
LIVE_EVENT_ID: ContextVar[str | None] = ContextVar("billing_live_event_id", default=None)


class LiveEventIds(SchemaExtension):
    """A message an outbox event produced carries ``extensions.eventId`` (the event's id, as
    ``BillingEvent.id`` and the webhooks' ``webhook-id``): pass it to ``billingEvents(after:)``."""

    def on_stream_result(self, result) -> Iterator[None]:
        event_id = LIVE_EVENT_ID.get()
        if event_id is not None:
            LIVE_EVENT_ID.set(None)
            result.extensions = {**(result.extensions or {}), "eventId": event_id}
        yield


@strawberry.type(description="An event of the organization's outbox: the same `type` and `data` as the webhook "
                             "sent for it (README: Webhooks).")
class BillingEvent:
    id: strawberry.ID = strawberry.field(description="The event's id: the webhooks' `webhook-id` (msg_...); "
                                                     "pass it as `after` to resume.")
    type: str
    created_at: datetime
    data: JSON = strawberry.field(description="The webhook's `data`: `object` as the API shows it, and extras.")

    @classmethod
    def of(cls, event: LiveEvent) -> BillingEvent:
        return cls(id=strawberry.ID(webhook_id(event.id)), type=event.type, created_at=event.created_at,
                   data=event.data)


@strawberry.type(description="A metric's use in the current billing month, after a recordUsage changed it.")
class UsageUpdate:
    metric: Metric
    used: BigInt
    limit: BigInt | None = strawberry.field(description="Null when unlimited.")
    remaining: BigInt | None = strawberry.field(description="Null when unlimited.")
    overage: BigInt
    percent_used: Decimal | None = strawberry.field(description="Of the limit, two decimals; null when unlimited.")
    amount: Decimal | None = strawberry.field(
        description="What this metric's use costs so far this billing month, in major units of the plan's "
                    "currency; null while the metric has no priced charge.")
    at: datetime = strawberry.field(description="When the value was read (after the change committed).")

    @classmethod
    def of(cls, item: MetricUse, at: datetime) -> UsageUpdate:
        use = item.use
        return cls(metric=Metric.from_row(item.metric), used=use.used, limit=use.limit, remaining=use.remaining,
                   overage=use.overage, percent_used=use.percent_used, amount=getattr(use, "amount", None), at=at)
