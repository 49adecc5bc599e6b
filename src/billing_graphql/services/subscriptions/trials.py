"""A plan's trial is given once per organization (``BILLING_TRIAL_ONCE``, on by default).

Each trial an organization starts, and each plan it moves to during a trial, is a
``trial_grants`` row (primary key organization and plan). Callers hold the organization's
lock, so the check and the insert cannot interleave; the key is the backstop.
With ``BILLING_TRIAL_ONCE=0`` a plan's trial is given on every subscription, as before.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from billing_graphql.db.models import Plan, TrialGrant


async def trial_available(session: AsyncSession, organization_id: uuid.UUID, plan: Plan, *, trial_once: bool) -> bool:
    """Whether a new subscription of ``organization_id`` to ``plan`` starts with the plan's trial
    (``trial_once``: the setting BILLING_TRIAL_ONCE)."""
    if plan.trial_days <= 0:
        return False
    if not trial_once:
        return True
    return await session.get(TrialGrant, (organization_id, plan.id)) is None


async def record_trial(session: AsyncSession, organization_id: uuid.UUID, plan_id: uuid.UUID, now: datetime) -> None:
    """Remember that the organization has had (or is in) ``plan_id``'s trial."""
    if await session.get(TrialGrant, (organization_id, plan_id)) is None:
        session.add(TrialGrant(organization_id=organization_id, plan_id=plan_id, granted_at=now))
