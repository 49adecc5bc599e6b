"""A round of the delivery worker that finds nothing to do is one read (``dispatch.waiting``), and ``waiting``
tells what fan out and claim would find: events not yet fanned out, deliveries due, leased, to a disabled
endpoint, and the backlog ``/metrics`` reports."""

from __future__ import annotations

from datetime import timedelta

from billing_graphql.services.webhooks.dispatch import Backlog, claim, disable_endpoint, fan_out, waiting
from tests.helpers import count_statements
from tests.webhooks.conftest import add_endpoint, emit
from tests.webhooks.test_delivery import worker


async def test_a_round_with_nothing_to_do_is_one_read_and_takes_no_lock(db, organization, clock):
    idle = worker(db, clock)
    try:
        assert await idle.run_once() == 0  # whatever setting up left, gone
        with count_statements(db, cold_credentials=False) as counted:
            assert await idle.run_once() == 0
    finally:
        await idle.close()
    (statement,) = counted.statements
    assert statement.lstrip().startswith("SELECT") and "FOR UPDATE" not in statement


async def test_waiting_follows_an_event_from_the_outbox_to_its_claim(db, organization, receiver, clock):
    endpoint, _ = await add_endpoint(db, receiver.url, organization_id=organization.id, now=clock())
    await fan_out(db, clock())  # what creating the endpoint emitted, if anything, out of the way
    await claim(db, clock(), limit=1000)
    clock.advance(minutes=5)
    before = await waiting(db, clock())
    assert not before.undispatched

    await emit(db, organization.id, "invoice.paid", now=clock())
    emitted = await waiting(db, clock())
    assert emitted.undispatched and emitted.backlog == before.backlog

    await fan_out(db, clock())
    fanned = await waiting(db, clock())
    assert not fanned.undispatched and fanned.due
    assert fanned.backlog.pending == before.backlog.pending + 1

    (taken,) = await claim(db, clock(), lease=timedelta(seconds=60))
    leased = await waiting(db, clock())
    assert not leased.due and leased.backlog == fanned.backlog  # claimed, still to be delivered
    clock.advance(seconds=59)
    assert not (await waiting(db, clock())).due
    clock.advance(seconds=2)
    assert (await waiting(db, clock())).due  # the lease ran out: another worker may take it

    async with db.write() as session:
        assert await disable_endpoint(session, endpoint.id, "test", clock())
    disabled = await waiting(db, clock())
    assert not disabled.due and disabled.backlog.pending == before.backlog.pending
    assert (await waiting(db, clock())).backlog == disabled.backlog


async def test_an_empty_outbox_waits_for_nothing(db, clock):
    assert await waiting(db, clock()) == await waiting(db, clock())
    nothing = await waiting(db, clock())
    assert (nothing.undispatched, nothing.due, nothing.backlog) == (False, False, Backlog(0, None))
