"""The billing run's batches (``services.billing.renewal_batch``): what goes wrong for one
subscription of a batch touches no other, a processor call that dies is recovered by its key, and
a run killed with SIGKILL mid-way is finished by four runs at once, each subscription billed once
with gapless numbers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update

from billing_graphql.db.models import Invoice, OutboxEvent, Payment, PaymentMethod, PaymentStatus, Plan, Subscription
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.gateways.sandbox import SandboxGateway
from billing_graphql.jobs.billing_run import run_billing, run_config
from tests.services.billing_run_helpers import count

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, tzinfo=UTC)
DUE = datetime(2026, 2, 5, 1, tzinfo=UTC)  # every seeded period ended at T0 + 1 month
DYING_TOKEN = "pm_card_dies"  # the processor charges it, then the call raises (the process "died")


class Processor(SandboxGateway):
    """The sandbox, keeping every key it was sent; a card ``DYING_TOKEN`` is charged, then the
    call raises as if the process had died before it heard the answer."""

    def __init__(self, *, dying: bool = True) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.dying = dying

    async def charge(self, **kwargs):
        token = kwargs["payment_method_token"]
        result = await super().charge(**dict(kwargs, payment_method_token="pm_card_visa" if token == DYING_TOKEN
                                             else token))
        self.keys.append(kwargs["idempotency_key"])
        if self.dying and token == DYING_TOKEN:
            raise RuntimeError("the process died after the processor charged")
        return result


async def _seed(db, n: int) -> list[Subscription]:
    from bench.renewals import seed_due

    await seed_due(db, n, T0)
    async with db.read() as session:
        return list((await session.scalars(select(Subscription).order_by(Subscription.organization_id))).all())


async def _card(db, organization_id, token: str) -> None:
    async with db.write() as session:
        await session.execute(update(PaymentMethod).where(PaymentMethod.organization_id == organization_id)
                              .values(gateway_payment_method_id=token))


async def _run(db, settings, gateway: Processor, *, batch: int = 100):
    return await run_billing(db, run_config(settings, GatewayRegistry(settings, {"sandbox": gateway})), now=DUE,
                             batch=batch)


async def _numbers(db) -> list[str]:
    async with db.read() as session:
        return sorted((await session.scalars(select(Invoice.number))).all())


async def _row(db, model, *where):
    async with db.read() as session:
        return (await session.scalars(select(model).where(*where))).all()


async def test_a_declined_card_in_a_batch_moves_its_subscription_alone(db, settings):
    subs = await _seed(db, 5)
    declined = subs[2]
    await _card(db, declined.organization_id, "pm_card_chargeDeclined")
    processor = Processor()
    result = await _run(db, settings, processor)
    assert (result.tally.invoices, result.tally.paid, result.tally.failed, result.errors) == (5, 4, 1, 0)
    assert len(processor.keys) == len(set(processor.keys)) == 5
    assert await _numbers(db) == [f"INV-202602-{n:06d}" for n in range(1, 6)]
    for sub in subs:
        (row,) = await _row(db, Subscription, Subscription.id == sub.id)
        (invoice,) = await _row(db, Invoice, Invoice.subscription_id == sub.id)
        (payment,) = await _row(db, Payment, Payment.invoice_id == invoice.id)
        assert row.current_period_start == datetime(2026, 2, 5, tzinfo=UTC)
        if sub.id == declined.id:
            assert (row.status, invoice.status, payment.status) == (
                SubscriptionStatus.PAST_DUE, InvoiceStatus.OPEN, PaymentStatus.FAILED)
            assert row.next_retry_at is not None and payment.failure_code == "card_declined"
        else:
            assert (row.status, invoice.status, payment.status) == (
                SubscriptionStatus.ACTIVE, InvoiceStatus.PAID, PaymentStatus.SUCCEEDED)
    failed = await count(db, OutboxEvent, OutboxEvent.event_type == "invoice.payment_failed")
    assert (failed, await count(db, OutboxEvent, OutboxEvent.event_type == "invoice.paid")) == (1, 4)


async def test_a_subscription_that_cannot_be_priced_is_left_out_and_the_batch_goes_on(db, settings):
    subs = await _seed(db, 5)
    bad = subs[1]
    async with db.write() as session:  # a plan in a currency nobody knows: pricing it raises
        plan = await session.get(Plan, bad.plan_id)
        odd = Plan(**{column.key: getattr(plan, column.key) for column in Plan.__table__.columns
                      if column.key not in ("id", "slug", "currency")}, slug="odd", currency="ZZZ")
        session.add(odd)
        await session.flush()
        await session.execute(update(Subscription).where(Subscription.id == bad.id).values(plan_id=odd.id))
    result = await _run(db, settings, Processor())
    assert (result.tally.invoices, result.errors) == (4, 1)
    assert await _row(db, Invoice, Invoice.subscription_id == bad.id) == []
    (untouched,) = await _row(db, Subscription, Subscription.id == bad.id)
    assert untouched.current_period_start == T0  # left for the next run, nothing of it written
    assert await _numbers(db) == [f"INV-202602-{n:06d}" for n in range(1, 5)]

    async with db.write() as session:  # the data mended: the next run bills it, next in the series
        await session.execute(update(Plan).where(Plan.id == odd.id).values(currency="IDR"))
    again = await _run(db, settings, Processor())
    assert (again.tally.invoices, again.errors) == (1, 0)
    (invoice,) = await _row(db, Invoice, Invoice.subscription_id == bad.id)
    assert (invoice.number, invoice.status) == ("INV-202602-000005", InvoiceStatus.PAID)


async def test_a_charge_that_dies_fails_its_subscription_alone_and_its_key_finishes_it(db, settings):
    subs = await _seed(db, 6)
    dying = subs[3]
    await _card(db, dying.organization_id, DYING_TOKEN)
    crashing = Processor()
    result = await _run(db, settings, crashing, batch=4)
    assert (result.tally.invoices, result.errors) == (5, 1)
    assert await _row(db, Invoice, Invoice.subscription_id == dying.id) == []
    assert await count(db, Invoice) == await count(db, Payment) == 5  # the others once each
    async with db.read() as session:
        stored = set((await session.scalars(select(Payment.idempotency_key))).all())
    # The batch was rolled back and run again without it: its neighbours were sent their own keys
    # again (the processor answers with the first outcome), never a new one.
    assert stored < set(crashing.keys) and len(set(crashing.keys)) == 6

    healthy = Processor(dying=False)
    done = await _run(db, settings, healthy)
    assert (done.tally.invoices, done.errors) == (1, 0)
    (invoice,) = await _row(db, Invoice, Invoice.subscription_id == dying.id)
    (payment,) = await _row(db, Payment, Payment.invoice_id == invoice.id)
    assert healthy.keys == [payment.idempotency_key]  # the key the dead call carried
    assert payment.idempotency_key in set(crashing.keys) - stored
    assert invoice.status is InvoiceStatus.PAID
    assert await _numbers(db) == [f"INV-202602-{n:06d}" for n in range(1, 7)]


CHILD = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime
    from billing_graphql.db.engine import Database
    from billing_graphql.gateways import GatewayRegistry
    from billing_graphql.gateways.sandbox import SandboxGateway
    from billing_graphql.jobs.billing_run import run_billing, run_config
    from tests.helpers import test_settings

    class Slow(SandboxGateway):
        async def charge(self, **kwargs):
            await asyncio.sleep(0.05)
            return await super().charge(**kwargs)

    async def main(url, now):
        db = Database.from_url(url)
        settings = test_settings(url)
        config = run_config(settings, GatewayRegistry(settings, {"sandbox": Slow()}))
        await run_billing(db, config, now=datetime.fromisoformat(now), batch=20)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def test_a_run_killed_mid_way_is_finished_by_four_runs_each_subscription_billed_once(db, settings):
    n = 300
    await _seed(db, n)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, settings.database_url, DUE.isoformat()], cwd=ROOT,
                             env=env, stderr=subprocess.PIPE)
    try:
        for _ in range(3000):  # until a few batches have committed
            if await count(db, Invoice) >= 40 or child.poll() is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    committed = await count(db, Invoice)
    assert 0 < committed < n  # killed mid-way: some batches committed, the one in hand lost
    async with db.read() as session:
        before = set((await session.scalars(select(Payment.idempotency_key))).all())

    processor = Processor()
    config = run_config(settings, GatewayRegistry(settings, {"sandbox": processor}))
    results = await asyncio.gather(*[run_billing(db, config, now=DUE, batch=25) for _ in range(4)])
    assert sum(r.tally.invoices for r in results) == n - committed
    assert sum(r.errors for r in results) == 0
    assert await count(db, Invoice) == await count(db, Payment) == n
    async with db.read() as session:
        per_subscription = set((await session.execute(
            select(Invoice.subscription_id, func.count()).group_by(Invoice.subscription_id))).all())
        keys = (await session.scalars(select(Payment.idempotency_key))).all()
    assert {c for _, c in per_subscription} == {1} and len(per_subscription) == n
    assert len(set(keys)) == n and not before & set(processor.keys)  # nothing committed was charged again
    assert len(processor.keys) == len(set(processor.keys)) == n - committed
    assert await _numbers(db) == [f"INV-202602-{k:06d}" for k in range(1, n + 1)]
    assert await count(db, Subscription, Subscription.current_period_start == T0) == 0


async def test_the_batch_update_writes_and_reports_only_the_columns_whose_value_changed(db, settings):
    """As the flush tells a change: an attribute set to the value it had is none (no column in the
    UPDATE, no MRR revision noted); a value that moved is written and reported."""
    from billing_graphql.db import mrr_history
    from billing_graphql.services.billing.renewal_batch import _update
    from tests.factories import make_organization, make_subscription

    organization = await make_organization(db)
    subscription = await make_subscription(db, organization.id, start=T0)
    moved = subscription.current_period_end.replace(month=3)
    async with db.write() as session:
        row = await session.get(Subscription, subscription.id)
        row.plan_id, row.agent_count = row.plan_id, row.agent_count  # set, but to what they were
        row.current_period_end = moved
        changed = await _update(session, [row])
        assert changed == [(row, {"current_period_end"})]
        mrr_history.note_subscriptions(session, changed)
        assert not session.info.get(mrr_history.NOTED)
    async with db.read() as session:
        stored = await session.get(Subscription, subscription.id)
        assert stored.current_period_end == moved and stored.plan_id == subscription.plan_id
