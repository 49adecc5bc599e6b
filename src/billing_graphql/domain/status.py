"""Statuses of subscriptions and invoices, and the one function that moves a subscription."""

from __future__ import annotations

import enum
from datetime import datetime

from billing_graphql.domain.errors import BillingError, BillingErrorCode


class SubscriptionStatus(enum.Enum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    UNPAID = "UNPAID"
    CANCELED = "CANCELED"


class InvoiceStatus(enum.Enum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    VOID = "VOID"
    UNCOLLECTIBLE = "UNCOLLECTIBLE"


S = SubscriptionStatus

# Every legal move of a subscription's status; anything else is refused.
SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    S.TRIALING: frozenset({S.ACTIVE, S.PAST_DUE, S.CANCELED}),
    S.ACTIVE: frozenset({S.PAST_DUE, S.CANCELED}),
    S.PAST_DUE: frozenset({S.ACTIVE, S.UNPAID, S.CANCELED}),
    S.UNPAID: frozenset({S.ACTIVE, S.CANCELED}),
    S.CANCELED: frozenset(),
}

LIVE_STATUSES = frozenset(status for status in SubscriptionStatus if status is not S.CANCELED)


def transition(current: SubscriptionStatus, target: SubscriptionStatus) -> SubscriptionStatus:
    """Return ``target`` when moving there from ``current`` is legal; raise otherwise."""
    if target not in SUBSCRIPTION_TRANSITIONS[current]:
        if current is S.CANCELED:
            raise BillingError(
                BillingErrorCode.SUBSCRIPTION_CANCELED,
                "The subscription is canceled; start a new one instead.",
            )
        raise BillingError(
            BillingErrorCode.INVALID_TRANSITION,
            f"A subscription cannot go from {current.value} to {target.value}.",
            field="status",
        )
    return target


# A trial that has ended while the subscription is still TRIALING or could not be paid for.
TRIAL_PROBLEM_STATUSES = frozenset({S.TRIALING, S.PAST_DUE, S.UNPAID})


def trial_expired(status: SubscriptionStatus, trial_ends_at: datetime | None, now: datetime) -> bool:
    """The trial is over (``now`` at or past its end) and no paid period has taken over: the
    subscription is still TRIALING, or PAST_DUE/UNPAID (its first charge failed)."""
    return trial_ends_at is not None and now >= trial_ends_at and status in TRIAL_PROBLEM_STATUSES
