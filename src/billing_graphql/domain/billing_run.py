"""What the billing run has to do for one subscription, and in which order (pure).

The due work of a subscription at an instant ``now`` is a list of steps, each at its own
instant (never after ``now``), done oldest first; when several fall on the same instant the
order is: the trial-will-end notice, a dunning retry, the trial end, the period end. The run
does one step, updates the state, and asks again, so a subscription several periods behind
is brought up to date period by period (each period its own invoice).

- TRIAL_WILL_END: ``TRIAL_WILL_END_NOTICE`` before a trial ends, once (``trial_will_end_sent``);
  at the trial's start when the trial is shorter than that.
- DUNNING_RETRY: ``next_retry_at`` has come (a PAST_DUE subscription, or a payment left PENDING
  by a processor fault).
- TRIAL_END: a TRIALING subscription's trial (its first period) has ended.
- PERIOD_END: the current period of an ACTIVE, PAST_DUE or UNPAID subscription has ended: apply
  the scheduled change, or cancel (``cancel_at_period_end``), else renew.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_graphql.domain.periods import BillingPeriod, Period, period_containing
from billing_graphql.domain.status import SubscriptionStatus

TRIAL_WILL_END_NOTICE = timedelta(days=3)


class Step(enum.Enum):
    """Kinds of due work, in their order on the same instant."""

    TRIAL_WILL_END = 0
    DUNNING_RETRY = 1
    TRIAL_END = 2
    PERIOD_END = 3


@dataclass(frozen=True, slots=True)
class DueState:
    """What decides a subscription's due work (a copy of its row's fields)."""

    status: SubscriptionStatus
    current_period_end: datetime
    trial_ends_at: datetime | None
    next_retry_at: datetime | None
    trial_will_end_sent: bool
    current_period_start: datetime | None = None  # a trial's start: a short trial's notice comes then


@dataclass(frozen=True, slots=True)
class DueStep:
    step: Step
    at: datetime


def due_steps(state: DueState, now: datetime) -> list[DueStep]:
    """Every step due at ``now`` as the state stands, oldest first (ties in ``Step`` order)."""
    if state.status is SubscriptionStatus.CANCELED:
        return []
    steps: list[DueStep] = []
    trialing = state.status is SubscriptionStatus.TRIALING
    if trialing and state.trial_ends_at is not None and not state.trial_will_end_sent:
        notice_at = state.trial_ends_at - TRIAL_WILL_END_NOTICE
        if state.current_period_start is not None:
            notice_at = max(notice_at, state.current_period_start)
        if notice_at <= now:
            steps.append(DueStep(Step.TRIAL_WILL_END, notice_at))
    if state.next_retry_at is not None and state.next_retry_at <= now:
        steps.append(DueStep(Step.DUNNING_RETRY, state.next_retry_at))
    if state.current_period_end <= now:
        steps.append(DueStep(Step.TRIAL_END if trialing else Step.PERIOD_END, state.current_period_end))
    return sorted(steps, key=lambda step: (step.at, step.step.value))


def next_step(state: DueState, now: datetime) -> DueStep | None:
    """The first step due at ``now``, or None when the subscription is up to date."""
    steps = due_steps(state, now)
    return steps[0] if steps else None


def next_period(anchor: datetime, billing_period: BillingPeriod, ended_at: datetime) -> Period:
    """The period that starts where the last one ended (``ended_at``), on the anchored schedule.

    A re-anchored schedule (a trial's end, a change of billing period) starts at its anchor.
    """
    return period_containing(anchor, billing_period, max(ended_at, anchor))
