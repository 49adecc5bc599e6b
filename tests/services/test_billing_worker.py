"""Where the billing run runs: the in-process worker (app lifespan's background tasks) and the
`run-billing` command."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from billing_graphql.app import background_tasks, create_app
from billing_graphql.cli import main
from billing_graphql.db.models import Invoice
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.jobs.billing_run import billing_worker
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import subscribe
from tests.factories import make_payment_method, make_plan
from tests.services.billing_run_helpers import count


async def test_the_worker_renews_what_is_due_and_stops_when_cancelled(db, settings, org):
    started = datetime.now(UTC) - timedelta(days=40)
    plan = await make_plan(db, monthly=100000, trial_days=0, now=started)
    await make_payment_method(db, org.id, now=started)
    await subscribe(db, None, organization_id=org.id, choice=PlanChoice(plan.id, BillingPeriod.MONTHLY),
                    payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=started)
    task = asyncio.create_task(billing_worker(db, settings, GatewayRegistry(settings)))
    try:
        for _ in range(200):
            if await count(db, Invoice) == 2:
                break
            await asyncio.sleep(0.05)
        assert await count(db, Invoice) == 2  # the first invoice and the renewal
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_serve_starts_the_background_tasks_unless_told_not_to(settings):
    app = create_app(settings, freeze_gc=False, workers=True)
    assert len(background_tasks(app, settings)) == 2  # the billing run and webhook delivery
    assert create_app(settings, freeze_gc=False).state.settings.run_workers is False


@pytest.fixture
def sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BILLING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    return tmp_path / "cli.db"


def test_run_billing_command_prints_a_summary(sqlite_file, capsys):
    assert main(["seed-demo"]) == 0
    capsys.readouterr()
    until = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    assert main(["run-billing", "--until", until, "--batch", "10"]) == 0
    line = capsys.readouterr().out.strip()
    # The demo's story (README: The demo), 40 days on: the active, trialing and past-due organizations' subscriptions
    # come due; the past-due one's card declines every attempt (the canceled one is not examined).
    assert line.startswith("examined 3 subscriptions, 4 invoices, 3 paid, 3 failed, 0 canceled"), line
    assert main(["run-billing", "--until", until]) == 0
    assert capsys.readouterr().out.startswith("examined 0 subscriptions, 0 invoices")


def test_run_billing_refuses_bad_arguments(sqlite_file, capsys):
    with pytest.raises(SystemExit, match="--until"):
        main(["run-billing", "--until", "2026-01-01T00:00:00"])  # no zone
    with pytest.raises(SystemExit, match="--until"):
        main(["run-billing", "--until", "soon"])
    assert main(["run-billing", "--batch", "0"]) == 2
