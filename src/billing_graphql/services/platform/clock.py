"""The current time: the real clock, or the frozen test clock when BILLING_TEST_CLOCK is on."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import TestClock
from billing_graphql.domain.actors import Actor
from billing_graphql.domain.clock import require_utc
from billing_graphql.domain.errors import validation
from billing_graphql.services.platform.audit import record_audit


async def current_time(db: Database, *, test_clock: bool) -> datetime:
    if not test_clock:
        return datetime.now(UTC)
    async with db.read() as session:
        frozen = await session.scalar(select(TestClock.now).where(TestClock.id == 1))
    if frozen is not None:
        return frozen
    # First use: freeze at the real time (whole seconds, so figures stay readable).
    start = datetime.now(UTC).replace(microsecond=0)
    async with db.write() as session:
        existing = await session.get(TestClock, 1)
        if existing is not None:
            return existing.now
        session.add(TestClock(id=1, now=start))
    return start


async def advance_clock(db: Database, actor: Actor, to: datetime) -> datetime:
    """Move the test clock forward to ``to``; it never goes back."""
    to = require_utc(to, "to")
    current = await current_time(db, test_clock=True)
    async with db.write() as session:
        clock = await session.get(TestClock, 1)
        assert clock is not None  # current_time created it
        if to < clock.now:
            raise validation(f"The test clock only moves forward; it is at {clock.now.isoformat()}.", "to")
        before = clock.now
        clock.now = to
        record_audit(
            session,
            actor=actor,
            action="clock.advanced",
            object_type="TestClock",
            object_id="1",
            organization_id=None,
            now=current,
            before={"now": before.isoformat()},
            after={"now": to.isoformat()},
        )
    return to
