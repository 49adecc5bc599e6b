"""The billing run: find the subscriptions with work due, and bring each up to date.

``run_billing`` walks the organizations with work due in id order, a batch at a time
(``services.billing.renewal_batch.renew_batch``): one transaction claims up to ``batch``
organizations (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: concurrent runs, in one process or
several, take disjoint batches, and an organization another transaction holds is passed by, its
holder brings it up to date; on SQLite the write transaction (BEGIN IMMEDIATE) serializes the
runs) and renews their plain renewals together, one statement per kind of row. What a batch
leaves (several steps due, dunning, cancellations, trial notices, a batch that failed as a
whole) goes through ``run_subscription`` after the batch commits: one subscription in one unit of
work (``services.unit_of_work.money_move``: one transaction, the organization's lock taken
first, ``claim="skip_locked"``), then ``services.billing.renewals.advance_subscription``. Each
path re-reads the subscription under the lock, so nothing is done twice, and the unique recurring
invoice per subscription and period is the backstop; the processor's keys derive from what is
billed, so work redone after a crash is not charged twice.

``billing_worker`` repeats the run every ``BILLING_WORKER_INTERVAL_SECONDS`` inside ``serve``.

Every run (the CLI's ``run-billing``, the worker's, ``advanceClock``'s) is recorded in the
operator metrics (``metrics.record_billing_run``) when it ends: completed or failed, its
duration, the subscriptions by result, how overdue the oldest one still due is, and the time of
the last completed run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from billing_graphql.db.engine import Database
from billing_graphql.db.models import Subscription
from billing_graphql import metrics
from billing_graphql.domain.billing_run import due_steps
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.services.billing.renewal_batch import RetryWithout, renew_batch
from billing_graphql.services.billing.renewals import advance_subscription
from billing_graphql.services.billing.run_shared import RunConfig, Tally, due_condition, due_state
from billing_graphql.services.unit_of_work import money_move
from billing_graphql.settings import Settings

log = logging.getLogger(__name__)


def run_config(settings: Settings, gateways: GatewayRegistry) -> RunConfig:
    return RunConfig(gateways=gateways, dunning_days=settings.dunning_days,
                     cancel_when_exhausted=settings.dunning_final_action == "cancel")


async def run_subscription(db: Database, subscription_id: uuid.UUID, now: datetime, config: RunConfig, *,
                           organization_id: uuid.UUID | None = None, skip_locked: bool = False) -> Tally | None:
    """Bring one subscription up to date at ``now`` in one unit of work (its own transaction,
    under its organization's lock). None when ``skip_locked`` and another transaction holds the
    lock (or the organization is gone)."""
    if organization_id is None:
        async with db.read() as session:
            organization_id = await session.scalar(
                select(Subscription.organization_id).where(Subscription.id == subscription_id))
        if organization_id is None:
            return Tally(examined=0)
    async with money_move(db, organization_id, "billing_run", None, {}, actor=None, now=now,
                          gateways=config.gateways, claim="skip_locked" if skip_locked else "wait",
                          instant="step") as uow:
        if uow is None:
            return None
        subscription = await uow.session.get(Subscription, subscription_id, populate_existing=True)
        if subscription is None or subscription.organization_id != organization_id:
            return Tally(examined=0)
        return await advance_subscription(uow, subscription, now, config)


async def count_due(db: Database, now: datetime, config: RunConfig) -> int:
    from sqlalchemy import func

    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(Subscription).where(due_condition(now, config)))


@dataclass(slots=True)
class RunResult:
    tally: Tally
    errors: int
    seconds: float

    def results(self) -> dict[str, int]:
        """The subscriptions by result, as the ``billing_run_subscriptions_total`` metric counts them."""
        tally = self.tally
        return {"examined": tally.examined, "invoiced": tally.invoices, "paid": tally.paid,
                "payment_failed": tally.failed, "canceled": tally.canceled, "skipped": tally.skipped,
                "error": self.errors}

    def summary(self) -> str:
        tally = self.tally
        return (f"examined {tally.examined} subscriptions, {tally.invoices} invoices, {tally.paid} paid, "
                f"{tally.failed} failed, {tally.canceled} canceled, {tally.skipped} skipped, {self.errors} errors "
                f"in {self.seconds:.2f}s")


async def oldest_due_lag(db: Database, now: datetime, config: RunConfig, *, limit: int = 1000) -> float:
    """Seconds since the oldest step still due at ``now`` fell due (0 when nothing is due)."""
    async with db.read() as session:
        due = (await session.scalars(select(Subscription).where(due_condition(now, config)).limit(limit))).all()
    instants = [steps[0].at for steps in (due_steps(due_state(row), now) for row in due) if steps]
    return max((now - min(instants)).total_seconds(), 0.0) if instants else 0.0


async def run_billing(db: Database, config: RunConfig, *, now: datetime, batch: int = 100,
                      progress: Callable[[Tally], None] | None = None) -> RunResult:
    """One pass over the subscriptions due at ``now``, each brought up to date, recorded in the
    operator metrics (see the module's docstring).

    A subscription that fails (an unexpected error) is logged, rolled back and left for the next
    run; the others go on.
    """
    started = time.perf_counter()
    try:
        result = await _run(db, config, now=now, batch=batch, progress=progress, started=started)
    except Exception:
        metrics.record_billing_run(duration_seconds=time.perf_counter() - started, results={}, lag_seconds=None,
                                   completed=False)
        raise
    metrics.record_billing_run(duration_seconds=result.seconds, results=result.results(),
                               lag_seconds=await oldest_due_lag(db, now, config))
    return result


async def _run(db: Database, config: RunConfig, *, now: datetime, batch: int,
               progress: Callable[[Tally], None] | None, started: float) -> RunResult:
    tally, errors, after = Tally(), 0, None
    excluded: set[uuid.UUID] = set()  # organizations whose charge raised: left for the next run
    while True:
        try:
            done = await renew_batch(db, config, now, after=after, limit=batch, excluded=excluded)
        except RetryWithout as retry:
            errors += len(retry.organization_ids)
            excluded |= retry.organization_ids
            continue
        if not done.claimed:
            break
        tally.add(done.tally)
        errors += done.errors
        if progress is not None and done.tally.examined:
            progress(tally)
        for subscription_id, organization_id in done.rest:
            try:
                one = await run_subscription(db, subscription_id, now, config, organization_id=organization_id,
                                             skip_locked=True)
            except Exception:
                log.exception("billing run: subscription %s failed; left for the next run", subscription_id)
                errors += 1
                continue
            if one is None:
                tally.skipped += 1
            else:
                tally.add(one)
            if progress is not None:
                progress(tally)
        after = done.last
    return RunResult(tally, errors, time.perf_counter() - started)


async def billing_worker(db: Database, settings: Settings, gateways: GatewayRegistry) -> None:
    """Run the billing run now and every ``worker_interval_seconds`` until cancelled."""
    from billing_graphql.services.platform.clock import current_time

    config = run_config(settings, gateways)
    while True:
        try:
            now = await current_time(db, test_clock=settings.test_clock)
            result = await run_billing(db, config, now=now)
            if result.tally.examined or result.errors:
                log.info("billing run: %s", result.summary())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("billing run failed; trying again in %ss", settings.worker_interval_seconds)
        await asyncio.sleep(settings.worker_interval_seconds)
