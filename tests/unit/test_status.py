"""The subscription state machine: every pair of statuses, legal or refused."""

from __future__ import annotations

import itertools

import pytest

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.status import SubscriptionStatus as S
from billing_graphql.domain.status import transition

# Written out by hand (not read from the module): the moves DESIGN.md allows.
LEGAL = {
    (S.TRIALING, S.ACTIVE),  # trial converted (paid)
    (S.TRIALING, S.PAST_DUE),  # trial ended, first charge failed
    (S.TRIALING, S.CANCELED),
    (S.ACTIVE, S.PAST_DUE),  # a renewal failed
    (S.ACTIVE, S.CANCELED),
    (S.PAST_DUE, S.ACTIVE),  # a retry succeeded
    (S.PAST_DUE, S.UNPAID),  # the last retry failed
    (S.PAST_DUE, S.CANCELED),
    (S.UNPAID, S.ACTIVE),  # a later payment succeeded
    (S.UNPAID, S.CANCELED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair(current, target):
    if (current, target) in LEGAL:
        assert transition(current, target) is target
        return
    with pytest.raises(BillingError) as raised:
        transition(current, target)
    expected = BillingErrorCode.SUBSCRIPTION_CANCELED if current is S.CANCELED else BillingErrorCode.INVALID_TRANSITION
    assert raised.value.code is expected


def test_the_table_covers_all_25_pairs():
    assert len(list(itertools.product(S, S))) == 25
    assert len(LEGAL) == 10
