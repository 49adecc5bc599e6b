"""The billing run's whole lifecycle with the test clock (advanceClock runs it): a 14-day trial,
its end, three renewals (overage; a decline, a failed retry, a replaced card, a paid retry), a
scheduled downgrade at a period end, a cancellation at period end. Every invoice, status and
outbox event is checked, in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_graphql.gateways import GatewayRegistry
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.status import InvoiceStatus, SubscriptionStatus
from billing_graphql.services.subscriptions.choice import PlanChoice
from billing_graphql.services.subscriptions.lifecycle import cancel, subscribe
from billing_graphql.services.subscriptions.plan_changes import Effective, change_plan
from tests.factories import make_payment_method, make_plan, set_agents, set_overage_price
from tests.helpers import T0, test_settings
from tests.services.billing_run_helpers import events, invoices_of, lines_of, replace_card, set_counter, subscription

ADVANCE = 'mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }'


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 9, tzinfo=UTC)


@pytest.fixture
def settings(database_url: str):
    return test_settings(database_url, test_clock=True)


async def test_trial_renewals_dunning_downgrade_and_cancel(db, api, keys, settings):
    from billing_graphql.db.models import TestClock

    async with db.write() as session:
        session.add(TestClock(id=1, now=T0))
    org = keys.organization_id
    growth = await make_plan(db, name="Growth", monthly=299000, per_agent=50000, included_agents=1, trial_days=14,
                             limits={"messages": 1000})
    starter = await make_plan(db, name="Starter", monthly=149000, per_agent=25000, trial_days=14)
    await set_overage_price(db, growth.id, 100)
    await set_agents(db, org, 2)

    async def advance(to: datetime) -> None:
        moved = await api.ok(ADVANCE, {"to": to.isoformat()}, token=keys.super_admin)
        assert moved["advanceClock"]["errors"] == []

    started = await subscribe(db, None, organization_id=org, choice=PlanChoice(growth.id, BillingPeriod.MONTHLY),
                              payment_method_id=None, idempotency_key=None, gateways=GatewayRegistry(settings), now=T0)
    sub_id = started.subscription.id
    assert started.subscription.status is SubscriptionStatus.TRIALING
    assert started.subscription.trial_ends_at == at(1, 29)
    await make_payment_method(db, org, token="pm_card_visa")

    await advance(at(1, 25))  # nothing due yet
    assert [e[0] for e in await events(db, org)] == ["subscription.created"]
    await advance(at(1, 26))  # three days before the trial ends
    await advance(at(1, 27))  # sent once
    assert [(e[0], e[1]) for e in await events(db, org)][1:] == [("subscription.trial_will_end", at(1, 26))]

    await set_counter(db, org, "messages", "2026-01", 1500, at(1, 28))  # January: 500 above the 1,000 included
    await advance(at(1, 29))  # the trial ends: the first invoice, January's usage not yet billed
    sub = await subscription(db, sub_id)
    assert (sub.status, sub.current_period_start, sub.current_period_end) == (
        SubscriptionStatus.ACTIVE, at(1, 29), at(2, 28))

    await advance(at(2, 28))  # renewal 1: January's overage
    await replace_card(db, org, "pm_card_declined")
    await advance(at(3, 29))  # renewal 2 declines: PAST_DUE, retries from Mar 30
    sub = await subscription(db, sub_id)
    assert (sub.status, sub.retry_count, sub.next_retry_at) == (SubscriptionStatus.PAST_DUE, 0, at(3, 30))
    await advance(at(3, 30))  # retry 1 declines
    sub = await subscription(db, sub_id)
    assert (sub.status, sub.retry_count, sub.last_retry_at, sub.next_retry_at) == (
        SubscriptionStatus.PAST_DUE, 1, at(3, 30), at(4, 1))
    await replace_card(db, org, "pm_card_visa")
    await advance(at(4, 1))  # retry 2 succeeds with the new card
    sub = await subscription(db, sub_id)
    assert (sub.status, sub.retry_count, sub.next_retry_at) == (SubscriptionStatus.ACTIVE, 0, None)

    await change_plan(db, None, organization_id=org, plan_id=starter.id, billing_period=None,
                      effective=Effective.PERIOD_END, gateways=GatewayRegistry(settings), now=at(4, 10))
    await advance(at(4, 29))  # renewal 3 applies the downgrade
    sub = await subscription(db, sub_id)
    assert (sub.plan_id, sub.pending_plan_id, sub.status) == (starter.id, None, SubscriptionStatus.ACTIVE)
    await cancel(db, None, organization_id=org, immediately=False, reason=None, now=at(5, 2))
    await advance(at(5, 28))
    assert (await subscription(db, sub_id)).status is SubscriptionStatus.ACTIVE
    await advance(at(6, 30))  # canceled at May 29; nothing billed after
    sub = await subscription(db, sub_id)
    assert (sub.status, sub.ended_at, sub.cancel_at_period_end) == (SubscriptionStatus.CANCELED, at(5, 29), False)

    invoices = await invoices_of(db, sub_id)
    summary = [(i.number, i.status, i.period_start, i.period_end, i.subtotal, i.tax_name, i.tax, i.total,
                i.amount_paid, i.retry_count) for i in invoices]
    assert summary == [
        ("INV-202601-000001", InvoiceStatus.PAID, at(1, 29), at(2, 28), 349000, "PPN", 38390, 387390, 387390, 0),
        ("INV-202602-000001", InvoiceStatus.PAID, at(2, 28), at(3, 29), 399000, "PPN", 43890, 442890, 442890, 0),
        ("INV-202603-000001", InvoiceStatus.PAID, at(3, 29), at(4, 29), 349000, "PPN", 38390, 387390, 387390, 2),
        ("INV-202604-000001", InvoiceStatus.PAID, at(4, 29), at(5, 29), 174000, "PPN", 19140, 193140, 193140, 0),
    ]
    growth_lines = [("PLAN", "Growth plan (monthly)", 1, 299000, 299000),
                    ("SEATS", "Agents above the 1 included (monthly)", 1, 50000, 50000)]
    assert lines_of(invoices[0]) == growth_lines
    assert lines_of(invoices[1]) == growth_lines + [
        ("USAGE", "Messages above the 1,000 included per month", 500, 100, 50000)]
    assert (invoices[1].lines[2].period_start, invoices[1].lines[2].period_end) == (at(1, 29), at(2, 28))
    assert lines_of(invoices[2]) == growth_lines
    assert lines_of(invoices[3]) == [("PLAN", "Starter plan (monthly)", 1, 149000, 149000),
                                     ("SEATS", "Agents above the 1 included (monthly)", 1, 25000, 25000)]
    assert (invoices[2].last_retry_at, invoices[2].paid_at) == (at(4, 1), at(4, 1))

    got = [(e[0], e[1], e[2]["object"].get("invoiceNumber"), e[2]["object"]["status"], e[2].get("failureCode"))
           for e in await events(db, org)]
    assert got == [
        ("subscription.created", T0, None, "TRIALING", None),
        ("subscription.trial_will_end", at(1, 26), None, "TRIALING", None),
        ("invoice.created", at(1, 29), "INV-202601-000001", "OPEN", None),
        ("invoice.paid", at(1, 29), "INV-202601-000001", "PAID", None),
        ("subscription.updated", at(1, 29), None, "ACTIVE", None),
        ("invoice.created", at(2, 28), "INV-202602-000001", "OPEN", None),
        ("invoice.paid", at(2, 28), "INV-202602-000001", "PAID", None),
        ("invoice.created", at(3, 29), "INV-202603-000001", "OPEN", None),
        ("invoice.payment_failed", at(3, 29), "INV-202603-000001", "OPEN", "card_declined"),
        ("subscription.updated", at(3, 29), None, "PAST_DUE", None),
        ("invoice.payment_failed", at(3, 30), "INV-202603-000001", "OPEN", "card_declined"),
        ("invoice.paid", at(4, 1), "INV-202603-000001", "PAID", None),
        ("subscription.updated", at(4, 1), None, "ACTIVE", None),
        ("subscription.updated", at(4, 10), None, "ACTIVE", None),  # the downgrade scheduled
        ("subscription.updated", at(4, 29), None, "ACTIVE", None),  # ... and applied
        ("invoice.created", at(4, 29), "INV-202604-000001", "OPEN", None),
        ("invoice.paid", at(4, 29), "INV-202604-000001", "PAID", None),
        ("subscription.updated", at(5, 2), None, "ACTIVE", None),  # cancel at period end
        ("subscription.canceled", at(5, 29), None, "CANCELED", None),
    ]
