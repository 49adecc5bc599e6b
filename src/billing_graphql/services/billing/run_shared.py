"""What the billing run's renewals and dunning share: its settings (``RunConfig``), what it did
(``Tally``), the ids it derives from what it bills (``derived_id``), and a subscription's status
change at a step's instant (``move``). ``services.billing.renewals`` and
``services.billing.dunning`` both import this module, and neither imports the other back
(renewals calls dunning).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, or_

from billing_graphql.db.models import Subscription
from billing_graphql.domain.billing_run import TRIAL_WILL_END_NOTICE, DueState
from billing_graphql.domain.dunning import DEFAULT_DUNNING_DAYS
from billing_graphql.domain.status import SubscriptionStatus, transition
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.platform.audit import snapshot
from billing_graphql.services.subscriptions.results import SUBSCRIPTION_FIELDS
from billing_graphql.services.unit_of_work import MoneyMove
from billing_graphql.services.webhooks.objects import event_data

IDS = uuid.UUID("5b0e7d0c-2f64-4d8e-9a43-0c1f3a7e9d10")  # namespace of ids derived by the run


@dataclass(slots=True)
class Tally:
    """What the run did (summed over subscriptions)."""

    examined: int = 0
    paid: int = 0
    failed: int = 0
    canceled: int = 0
    skipped: int = 0
    invoice_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def invoices(self) -> int:
        """Invoices made: one per id kept."""
        return len(self.invoice_ids)

    def add(self, other: Tally) -> None:
        for name in ("examined", "paid", "failed", "canceled", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.invoice_ids.extend(other.invoice_ids)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The run's settings and gateways."""

    gateways: GatewayRegistry
    dunning_days: tuple[int, ...] = DEFAULT_DUNNING_DAYS
    cancel_when_exhausted: bool = False
    charge_concurrency: int = 16  # processor calls at once within a batch


def derived_id(*parts: object) -> uuid.UUID:
    """An id the run derives from what it bills (the same after a rollback and a rerun)."""
    return uuid.uuid5(IDS, ":".join(str(part) for part in parts))


def due_condition(now: datetime, config: RunConfig):
    """SQL for "has a step due at ``now``" (``domain.billing_run.due_steps``, plus a PAST_DUE
    subscription whose dunning has not started)."""
    return and_(
        Subscription.status != SubscriptionStatus.CANCELED,
        or_(
            Subscription.current_period_end <= now,
            Subscription.next_retry_at <= now,
            and_(Subscription.status == SubscriptionStatus.TRIALING, Subscription.trial_will_end_sent_at.is_(None),
                 Subscription.trial_ends_at <= now + TRIAL_WILL_END_NOTICE),
            and_(Subscription.status == SubscriptionStatus.PAST_DUE, Subscription.next_retry_at.is_(None),
                 Subscription.retry_count < len(config.dunning_days)),
        ),
    )


def due_state(subscription: Subscription) -> DueState:
    return DueState(
        status=subscription.status,
        current_period_end=subscription.current_period_end,
        trial_ends_at=subscription.trial_ends_at,
        next_retry_at=subscription.next_retry_at,
        trial_will_end_sent=subscription.trial_will_end_sent_at is not None,
        current_period_start=subscription.current_period_start,
    )


def subscription_payload(subscription: Subscription, before: dict[str, object] | None = None) -> dict[str, object]:
    """A subscription event's data: the subscription as the API shows it (and what changed)."""
    return event_data("Subscription", subscription, before=before)


def move(uow: MoneyMove, subscription: Subscription, target: SubscriptionStatus) -> None:
    """A status change through ``transition`` at the step's instant, announced
    (``subscription.updated``/``.canceled``)."""
    if subscription.status is target:
        return
    at = uow.now
    before = snapshot(subscription, *SUBSCRIPTION_FIELDS)
    subscription.status = transition(subscription.status, target)
    subscription.updated_at = at
    if target is SubscriptionStatus.CANCELED:
        subscription.canceled_at = subscription.canceled_at or at
        subscription.ended_at = at
        subscription.cancel_at_period_end = False
        subscription.pending_plan_id = subscription.pending_billing_period = None
        subscription.next_retry_at = None
    uow.emit("subscription.canceled" if target is SubscriptionStatus.CANCELED else "subscription.updated",
             subscription_payload(subscription, before))
