"""Rules the Subscription type shows: an expired trial, the billed agents, a cap too low."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing_graphql.domain.proration import billed_agents, cap_too_low
from billing_graphql.domain.status import SubscriptionStatus, trial_expired
from tests.helpers import T0

S = SubscriptionStatus


@pytest.mark.parametrize(("status", "ends", "expected"), [
    (S.TRIALING, T0, True),  # at the end exactly: over
    (S.TRIALING, T0 + timedelta(seconds=1), False),
    (S.PAST_DUE, T0 - timedelta(days=1), True),
    (S.UNPAID, T0 - timedelta(days=1), True),
    (S.ACTIVE, T0 - timedelta(days=1), False),  # a paid period took over
    (S.CANCELED, T0 - timedelta(days=1), False),
    (S.TRIALING, None, False),  # never had a trial
])
def test_trial_expired(status, ends, expected):
    assert trial_expired(status, ends, T0) is expected


def test_billed_agents_is_the_gauge_else_the_stored_count():
    assert billed_agents(None, 3) == 3
    assert billed_agents(7, 3) == 7
    assert billed_agents(0, 3) == 0  # a recorded zero is a count, not a missing gauge


def test_cap_too_low_only_below_the_minimum():
    assert cap_too_low(None, 100) is False
    assert cap_too_low(100, 100) is False
    assert cap_too_low(99, 100) is True
