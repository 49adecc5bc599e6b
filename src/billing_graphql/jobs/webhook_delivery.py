"""The webhook delivery loop: fan out new outbox events, claim due deliveries, send them
concurrently, record the answers; poll again after a short sleep when there was nothing to do
(so a committed event is attempted within about a second). A poll that finds nothing to do is one
read (``dispatch.waiting``), not the three transactions of a round.

Run by ``serve`` beside the HTTP server (unless ``--no-worker``) and alone by
``billing-graphql deliver-webhooks``. Several processes may run it at once on PostgreSQL
(SKIP LOCKED claims); on SQLite the write lock serializes them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from billing_graphql import metrics
from billing_graphql.db.engine import Database
from billing_graphql.domain.webhooks import Outcome, Random
from billing_graphql.services.webhooks import dispatch
from billing_graphql.services.webhooks.sender import AttemptResult, Message, Sender
from billing_graphql.settings import Settings

log = logging.getLogger("billing_graphql.webhooks")

POLL_SECONDS = 0.5
BATCH_SIZE = 50

#: The ``outcome`` label of ``billing_graphql_webhook_deliveries_total`` for each attempt's outcome.
OUTCOME_LABELS = {Outcome.DELIVERED: "delivered", Outcome.RETRY: "failed", Outcome.FAILED: "dead",
                  Outcome.GONE: "dead"}


def system_now() -> datetime:
    return datetime.now(UTC)


class WebhookWorker:
    """One delivery loop. ``now`` (scheduling), ``rand`` (jitter) and ``sender`` are injectable;
    ``on_claimed`` runs between claim and send (tests stop the worker there)."""

    def __init__(
        self,
        db: Database,
        *,
        production: bool,
        sender: Sender | None = None,
        now: Callable[[], datetime] = system_now,
        rand: Random = random.random,
        batch_size: int = BATCH_SIZE,
        poll_seconds: float = POLL_SECONDS,
        lease: timedelta = dispatch.LEASE,
        on_claimed: Callable[[list[dispatch.Claim]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.sender = sender or Sender(production=production)
        self.now = now
        self.rand = rand
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.on_claimed = on_claimed

    async def run_once(self) -> int:
        """One round: fan out, then claim and send one batch, and report the attempts and the
        backlog left to ``/metrics``. The number of attempts made. A round that finds nothing to do is one read."""
        waiting = await dispatch.waiting(self.db, self.now())
        if not (waiting.undispatched or waiting.due):
            self._report(waiting.backlog)
            return 0
        if waiting.undispatched:
            await dispatch.fan_out(self.db, self.now())
        claims = await dispatch.claim(self.db, self.now(), limit=self.batch_size, lease=self.lease)
        if claims:
            if self.on_claimed is not None:
                await self.on_claimed(claims)
            timed = await asyncio.gather(*(self._send(claim.message) for claim in claims))
            answers = [answer for answer, _ in timed]
            outcomes = await dispatch.record(self.db, list(zip(claims, answers, strict=True)), self.now(), self.rand)
            for claim, (_, seconds) in zip(claims, timed, strict=True):
                outcome = outcomes.get(claim.delivery_id)
                metrics.record_webhook_delivery("skipped" if outcome is None else OUTCOME_LABELS[outcome], seconds)
        self._report(await dispatch.backlog(self.db))
        return len(claims)

    def _report(self, left: dispatch.Backlog) -> None:
        age = (self.now() - left.oldest_event_at).total_seconds() if left.oldest_event_at else 0.0
        metrics.set_webhook_backlog(left.pending, age)

    async def _send(self, message: Message) -> tuple[AttemptResult, float]:
        started = time.perf_counter()
        answer = await self.sender.send(message)
        return answer, time.perf_counter() - started

    async def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Rounds until nothing is due (tests, the benchmark); the attempts made."""
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once()
            if done == 0:
                return total
            total += done
        return total

    async def run(self) -> None:
        """Forever (until cancelled); an unexpected error is logged and the loop goes on."""
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end delivery for good
                log.exception("webhook delivery round failed")
                done = 0
            if done < self.batch_size:
                await asyncio.sleep(self.poll_seconds)

    async def close(self) -> None:
        await self.sender.close()


async def run_webhook_worker(db: Database, settings: Settings) -> None:
    """The background task ``serve`` starts (see ``app.background_tasks``)."""
    worker = WebhookWorker(db, production=settings.production)
    try:
        await worker.run()
    finally:
        await worker.close()

