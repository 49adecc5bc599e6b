"""The test clock: read it, and (with BILLING_TEST_CLOCK on) move it forward."""

from __future__ import annotations

from datetime import datetime

import strawberry

from billing_graphql.domain.roles import Role as DomainRole
from billing_graphql.graphql.context import Info
from billing_graphql.graphql.errors import ClientError
from billing_graphql.graphql.payloads import node_payload
from billing_graphql.graphql.permissions import allow
from billing_graphql.graphql.common import attempt
from billing_graphql.jobs.billing_run import run_billing, run_config
from billing_graphql.services.platform import clock


@strawberry.type
class Clock:
    now: datetime
    frozen: bool = strawberry.field(description="True when the test clock is on.")


@strawberry.input
class AdvanceClockInput:
    to: datetime


AdvanceClockPayload = node_payload("AdvanceClockPayload", "clock", Clock)


@strawberry.type
class Query:
    @strawberry.field(extensions=allow(), description="The gateway's current time (the test clock's when it is on).")
    def clock(self, info: Info) -> Clock | None:
        return Clock(now=info.context.now, frozen=info.context.settings.test_clock)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=allow(DomainRole.SUPER_ADMIN),
        description="Move the test clock forward (only with BILLING_TEST_CLOCK=1); the billing run then "
                    "brings every subscription up to the new time, period by period, before this returns.",
    )
    async def advance_clock(self, info: Info, input: AdvanceClockInput) -> AdvanceClockPayload | None:
        context = info.context
        if not context.settings.test_clock:
            raise ClientError("The test clock is off; start the gateway with BILLING_TEST_CLOCK=1.")
        now, errors = await attempt(clock.advance_clock(context.db, context.actor, input.to))
        if now is not None:
            await run_billing(context.db, run_config(context.settings, context.gateways), now=now)
        return AdvanceClockPayload(clock=Clock(now=now, frozen=True) if now else None, errors=errors)
