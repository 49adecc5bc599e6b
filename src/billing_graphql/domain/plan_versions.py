"""Plan versions: a price change never surprises a subscriber (pure rules).

A plan's row holds its current version (``plans.version``) and its prices and charges; a price
change (base, annual, per agent, charges) of a plan with live subscriptions makes a new version,
and needs the admin to say whom it applies to:

- NEW_SUBSCRIPTIONS: existing subscriptions keep paying the version they are on (frozen in
  ``plan_versions``); new ones start on the new version;
- AT_RENEWAL: each live subscription moves to the new version at its next renewal
  (``subscriptions.pending_plan_version``), its upcoming invoice showing the new price until then.

Without ``applyTo`` the change is PLAN_IN_USE and nothing changes. A plan nobody subscribes to is
repriced in place (its version stays).
"""

from __future__ import annotations

import enum

from billing_graphql.domain.errors import BillingError, BillingErrorCode


class ApplyTo(enum.Enum):
    NEW_SUBSCRIPTIONS = "NEW_SUBSCRIPTIONS"
    AT_RENEWAL = "AT_RENEWAL"


def needs_new_version(*, prices_changed: bool, live_subscriptions: int, apply_to: ApplyTo | None) -> bool:
    """Whether a plan update makes a new version; PLAN_IN_USE when it would and no ``apply_to`` says how."""
    if not prices_changed or live_subscriptions == 0:
        return False
    if apply_to is None:
        raise BillingError(
            BillingErrorCode.PLAN_IN_USE,
            f"This plan has {live_subscriptions} live subscription(s): a price change needs applyTo"
            " (NEW_SUBSCRIPTIONS keeps their prices, AT_RENEWAL moves each at its next renewal).",
            field="applyTo",
        )
    return True


def version_at_renewal(plan_version: int, pending_plan_version: int | None) -> int:
    """The version a subscription pays from its next renewal on."""
    return pending_plan_version if pending_plan_version is not None else plan_version
