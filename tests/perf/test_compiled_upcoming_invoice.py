"""``subscription { upcomingInvoice }`` on the compiled path (``subscription_query`` with the field selected:
``services.billing.renewal_reads.live_upcoming`` reads the live subscription and its renewal's inputs in two
statements on the driver's connection, ``price_renewal`` prices them, and the Python plan completes the object from
that answer): the same bytes as graphql-core over the resolver's ``upcoming_invoice`` (about ten ORM statements) on
both databases, and never more statements.

The cases ``renewal_inputs``' reads and rules tell apart: a trial's end (no usage), the ended period's usage of the
version the subscription was on (every charge model, a plan change's invoice having billed part of it, a spending
cap, an annual period's distinct values across its months and gauges), an older plan version's frozen prices and a
move AT_RENEWAL, a scheduled plan or period change, per-agent and flat add-ons with the ``agents`` gauge or without,
a coupon that applies and one whose periods ran out, pending one-off items (another currency's, a deleted and an
invoiced one left out), the tax rate in force at the period's end, account credit; the ends (cancel at period end,
canceled, none live) and who names which organization."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest.mock import patch

import pytest
from sqlalchemy import select, update
from strawberry import relay

from billing_graphql.db.models import (
    InvoiceItem, Metric, Organization, Plan, PlanVersion, Subscription, TestClock, UsageCounter, UsageUniqueValue,
)
from billing_graphql.demo import seed_demo
from billing_graphql.domain.aggregation import Aggregation
from billing_graphql.domain.catalog import CouponDuration
from billing_graphql.domain.charges import Charge, ChargeModel
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.roles import Role
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.services.billing import renewal_reads
from billing_graphql.services.billing.renewals import price_renewal, renewal_inputs, upcoming_renewal
from billing_graphql.services.catalog.metrics import create_metric
from tests.factories import add_tax_rate, make_coupon, make_invoice, make_plan, make_subscription, set_agents, set_credit
from tests.helpers import T0, make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths
from tests.perf.test_compiled_subscription_page import attach_addons
from tests.perf.test_compiled_usage_amounts import PAID as METERED
from tests.perf.test_compiled_usage_amounts import _charges

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
ANCHOR = datetime(2026, 4, 20, 15, 0, tzinfo=UTC)  # the period in force: 20 April - 20 May
DOCUMENT = (Path(__file__).parents[2] / "queries" / "spa" / "UpcomingInvoice.graphql").read_text()

EVERYTHING = """query U($org: ID) { subscription(organizationId: $org) {
  __typename id status currentPeriodEnd
  upcomingInvoice {
    __typename currency
    lines { __typename id kind description quantity unitAmount { amount currency formatted } amount { amount formatted }
            periodStart periodEnd tierBreakdown { fromUnit toUnit units unitAmount { amount } flatAmount { amount }
            amount { amount formatted } } }
    subtotal { amount } discount { amount formatted } tax { amount } taxName taxRate total { amount formatted }
    creditApplied { amount } amountDue { amount formatted } creditAdded { amount } message
  }
  again: upcomingInvoice { total { amount } }
} }"""


async def _set(db, model, row_id: uuid.UUID, **values) -> None:
    async with db.write() as session:
        await session.execute(update(model).where(model.id == row_id).values(**values))


async def _counter(db, organization_id: uuid.UUID, code: str, key: str, value: int, at: datetime = NOW) -> None:
    async with db.write() as session:
        metric_id = await session.scalar(select(Metric.id).where(Metric.code == code))
        session.add(UsageCounter(organization_id=organization_id, metric_id=metric_id, period_key=key, value=value,
                                 updated_at=at))


async def _item(db, organization_id: uuid.UUID, description: str, unit_amount: int, quantity: int = 1, *,
                currency: str = "IDR", at: datetime = NOW, **values) -> None:
    async with db.write() as session:
        session.add(InvoiceItem(organization_id=organization_id, description=description, currency=currency,
                                unit_amount=unit_amount, quantity=quantity, amount=unit_amount * quantity,
                                created_at=at, updated_at=at, **values))


async def _drafts_agree(db, organization_id: uuid.UUID) -> None:
    """``read_renewal_inputs`` (one statement) priced as ``renewal_inputs`` (the ORM's reads) is: the same draft."""
    async with db.read() as session:
        subscription = await session.scalar(select(Subscription).where(
            Subscription.organization_id == organization_id, Subscription.status != SubscriptionStatus.CANCELED))
        due = None if subscription is None else upcoming_renewal(subscription)
        if due is None:
            return
        organization = await session.get(Organization, organization_id)
        at, trial_end = due
        expected = await renewal_inputs(session, organization, subscription, at=at, trial_end=trial_end)
    read = await renewal_reads.read_renewal_inputs(db, organization, subscription, at=at, trial_end=trial_end)
    assert (read.version, read.billing_period, read.price, read.agents, read.tax_rule) == (
        expected.version, expected.billing_period, expected.price, expected.agents, expected.tax_rule)
    assert [(item.metric.id, item.priced, item.included) for item in read.usage] == [
        (item.metric.id, item.priced, item.included) for item in expected.usage]
    assert (price_renewal(organization, subscription, read, at=at, trial_end=trial_end).draft
            == price_renewal(organization, subscription, expected, at=at, trial_end=trial_end).draft)


async def _same_answer(db, graphql_schema, token: str, organization: str | None = None, query: str = EVERYTHING,
                       statements: int = 4) -> bytes:
    """The answer, the same on both paths; without errors answered by the compiled path in ``statements``
    statements: the clock, the key and the two reads (one where nothing renews, none left to read without a live
    subscription), never more than graphql-core's."""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": {"org": organization}},
                                          token, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content, (answers.by_plan.content,
                                                                        answers.by_graphql_core.content)
    if b'"errors"' not in answers.by_graphql_core.content:
        assert answers.answered, answers.by_plan.content
        assert answers.plan_statements.count == statements, answers.plan_statements.statements
        assert answers.plan_statements.count <= answers.generic_statements.count
    return answers.by_plan.content


async def test_the_registered_document_answers_the_same_on_both_paths(db, settings, graphql_schema):
    keys = await seed_demo(db, T0, settings)
    with patch.object(renewal_reads, "read_renewal_inputs", wraps=renewal_reads.read_renewal_inputs) as read:
        answers = await answers_on_both_paths(db, graphql_schema, {"query": DOCUMENT}, keys[Role.OWNER])
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert answers.answered and read.await_count == 1  # the compiled path's read (the generic path's is the ORM's)
    assert b'"upcomingInvoice":{"currency":"IDR","lines":[{"kind":"PLAN"' in answers.by_plan.content
    # The key, and the two reads; graphql-core: the key, the subscription and the renewal's ORM reads.
    assert (answers.plan_statements.count, answers.generic_statements.count) == (3, 10)


PAID = {  # the charges of version 1, the version Acme's ended period is on: usage amounts' four models, and two more
    **{code: METERED[code] for code in ("messages", "api_calls", "agents", "contacts")},
    "users": Charge(ChargeModel.STANDARD, 10, Decimal(2000)),
    "peak": Charge(ChargeModel.STANDARD, 0, Decimal(100)),
    "integrations": Charge(ChargeModel.STANDARD, None, Decimal(100)),  # every unit included
}


@pytest.fixture
async def acme(db):
    """Acme ACTIVE on a metered seats plan (Rp 25,000 an agent beyond 2) for 20 April - 20 May, with usage of the
    period's billing month and of the next; Globex without a subscription; the test clock at NOW."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    await create_metric(db, None, code="users", name="Active users", aggregation=Aggregation.UNIQUE_COUNT,
                        property_name="user", now=T0)
    await create_metric(db, None, code="peak", name="Peak", aggregation=Aggregation.MAX, now=T0)
    plan = await make_plan(db, name="Metered", slug="metered", monthly=500000, annual=5000000, per_agent=25000,
                           included_agents=2)
    await _charges(db, plan.id, 1, PAID)
    subscription = await make_subscription(db, keys.organization_id, plan=plan, start=ANCHOR)
    await _set(db, Subscription, subscription.id, current_period_end=datetime(2026, 5, 20, 15, tzinfo=UTC),
               agent_count=3)
    for code, key, value in (("messages", "2026-04", 1151), ("messages", "2026-05", 7), ("api_calls", "2026-04", 2500),
                             ("contacts", "current", 12), ("users", "2026-04", 40), ("peak", "2026-04", 17),
                             ("peak", "2026-05", 99)):
        await _counter(db, keys.organization_id, code, key, value)
    return keys, subscription, plan


async def _check(db, graphql_schema, keys, statements: int = 4, query: str = EVERYTHING) -> bytes:
    """The owner's answer (both paths alike), and the inputs' reads agreeing."""
    await _drafts_agree(db, keys.organization_id)
    return await _same_answer(db, graphql_schema, keys.owner, query=query, statements=statements)


def _lines(answer: bytes) -> list[tuple[str, str, str, str]]:
    """The upcoming invoice's lines: kind, description, quantity, amount."""
    return [(line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
            for line in json.loads(answer)["data"]["subscription"]["upcomingInvoice"]["lines"]]


def _has_line(answer: bytes, *line: str) -> bool:
    return line in _lines(answer)


async def test_the_ended_period_s_usage_answers_the_same_on_both_paths(db, graphql_schema, acme):
    keys, subscription, _ = acme
    answer = await _check(db, graphql_schema, keys)
    # Usage of April's billing month only, at version 1's charges: 1,051 messages above 100 at Rp 0.5 (525.5: 526),
    # 3 packages of API calls, 12 contacts at the second VOLUME tier, 40 users above 10, April's peak (not May's);
    # the integrations all included. No gauge: the 3 agents stored (one seat above the two included), and no agents
    # to bill by their GRADUATED charge.
    assert b'"status":"ACTIVE","currentPeriodEnd":"2026-05-20T15:00:00Z"' in answer
    assert _has_line(answer, "PLAN", "Metered plan (monthly)", "1", "500000")
    assert _has_line(answer, "SEATS", "Agents above the 2 included (monthly)", "1", "25000")
    assert _has_line(answer, "USAGE", "Messages above the 100 included per month", "1051", "526")
    assert _lines(answer)[3:] == [("USAGE", "API calls in packages of 1,000", "2500", "1500"),
                                  ("USAGE", "Contacts (volume tiers)", "12", "1606"),
                                  ("USAGE", "Active users above the 10 included per month", "30", "60000"),
                                  ("USAGE", "Peak", "17", "1700")]
    lines = json.loads(answer)["data"]["subscription"]["upcomingInvoice"]["lines"]
    assert [len(line["tierBreakdown"]) for line in lines] == [0, 0, 0, 0, 1, 0, 0]  # the contacts' VOLUME tier
    assert b"Integrations" not in answer and b"Agents (graduated" not in answer
    assert b'"taxName":"PPN","taxRate":"0.12"' in answer and b'"message":null},"again":{"total"' in answer

    # A plan change's invoice billed 300 of April's messages (and users: never taken off, not SUMMED): 751 left.
    async with db.read() as session:
        ids = dict((await session.execute(select(Metric.code, Metric.id))).all())
    await _set(db, Subscription, subscription.id, usage_billed={
        "keys": ["2026-04"], "quantities": {str(ids["messages"]): 300, str(ids["users"]): 35}})
    billed = await _check(db, graphql_schema, keys)
    assert _has_line(billed, "USAGE", "Messages above the 100 included per month", "751", "376")
    assert _has_line(billed, "USAGE", "Active users above the 10 included per month", "30", "60000")
    # Of another period's months: nothing taken off.
    await _set(db, Subscription, subscription.id, usage_billed={"keys": ["2026-03"], "quantities": {
        str(ids["messages"]): 300}})
    assert _has_line(await _check(db, graphql_schema, keys), "USAGE", "Messages above the 100 included per month",
                     "1051", "526")
    # A spending cap: seats (25,000) and usage within 40,000, spent in the charges' order.
    await _set(db, Subscription, subscription.id, spending_cap=40000, usage_billed=None)
    capped = await _check(db, graphql_schema, keys)
    assert b"(capped by the spending cap)" in capped


async def test_an_annual_period_s_distinct_values_and_gauges(db, graphql_schema, acme):
    keys, subscription, _ = acme
    start = datetime(2025, 5, 20, 15, tzinfo=UTC)
    await _set(db, Subscription, subscription.id, billing_period=BillingPeriod.ANNUAL, period_anchor=start,
               current_period_start=start)
    async with db.write() as session:
        users = await session.scalar(select(Metric.id).where(Metric.code == "users"))
        session.add_all(UsageUniqueValue(organization_id=keys.organization_id, metric_id=users, period_key=key,
                                         value=value)
                        for key, value in (("2025-05", "ann"), ("2025-06", "ann"), ("2025-06", "bob"),
                                           ("2026-04", "cy"), ("2026-05", "dan")))  # May 2026: after the period
        session.add_all(UsageUniqueValue(organization_id=keys.organization_id, metric_id=users, period_key="2025-08",
                                         value=f"u{number}") for number in range(130))
    await _counter(db, keys.organization_id, "users", "2025-06", 2)
    await _counter(db, keys.organization_id, "users", "2025-08", 130)
    await _counter(db, keys.organization_id, "contacts", "2026-02", 30)  # the gauge's last month in the period
    await _counter(db, keys.organization_id, "peak", "2025-12", 60)
    annual = await _check(db, graphql_schema, keys)
    # 133 users across the period's twelve months (ann, bob, cy and 130 more; not the months' counts added up, nor
    # May 2026's dan): 13 above the 120 included (10 a month). The contacts' last month in the period (30, not the
    # current 12); the peak's largest month (60); April's messages all within the 1,200 included.
    assert _lines(annual) == [("PLAN", "Metered plan (annual)", "1", "5000000"),
                              ("SEATS", "Agents above the 2 included (annual)", "1", "300000"),
                              ("USAGE", "API calls in packages of 1,000", "2500", "1500"),
                              ("USAGE", "Contacts (volume tiers)", "30", "2515"),
                              ("USAGE", "Active users above the 10 included per month", "13", "26000"),
                              ("USAGE", "Peak", "60", "6000")]
    assert b'"periodStart":"2025-05-20T15:00:00Z","periodEnd":"2026-05-20T15:00:00Z"' in annual
    # Without the gauge's rows of months in the period: its current value, observed before the period's end.
    async with db.write() as session:
        await session.execute(update(UsageCounter).where(UsageCounter.period_key == "2026-02").values(
            period_key="2026-06"))
    assert _has_line(await _check(db, graphql_schema, keys), "USAGE", "Contacts (volume tiers)", "12", "1606")
    async with db.write() as session:  # observed after the period's end: none
        await session.execute(update(UsageCounter).where(UsageCounter.period_key == "current").values(
            updated_at=datetime(2026, 6, 1, tzinfo=UTC)))
    assert b"Contacts" not in await _check(db, graphql_schema, keys)


async def test_a_trial_s_end_bills_no_usage(db, graphql_schema, acme):
    keys, subscription, _ = acme
    await _set(db, Subscription, subscription.id, status=SubscriptionStatus.TRIALING,
               trial_ends_at=datetime(2026, 5, 20, 15, tzinfo=UTC))
    trial = await _check(db, graphql_schema, keys)
    assert b'"status":"TRIALING"' in trial and b"USAGE" not in trial and b'"kind":"PLAN"' in trial


async def test_older_versions_and_a_move_at_renewal(db, graphql_schema, acme):
    keys, subscription, plan = acme
    # The plan is at version 3 now; Acme pays version 1's frozen prices, its usage at version 1's charges.
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(
            version=3, base_price_monthly=900000, per_agent_price=90000))
        session.add_all(PlanVersion(plan_id=plan.id, number=number, base_price_monthly=monthly,
                                    base_price_annual=monthly * 10, per_agent_price=per_agent, created_at=T0)
                        for number, monthly, per_agent in ((1, 500000, 25000), (2, 700000, 30000)))
    await _charges(db, plan.id, 3, {"messages": Charge(ChargeModel.STANDARD, 0, Decimal(999))})
    older = await _check(db, graphql_schema, keys)
    assert _has_line(older, "PLAN", "Metered plan (monthly)", "1", "500000")
    assert _has_line(older, "SEATS", "Agents above the 2 included (monthly)", "1", "25000")
    assert _has_line(older, "USAGE", "Messages above the 100 included per month", "1051", "526")
    # A price change applied AT_RENEWAL moves it to version 2 at its renewal: version 2's prices, usage still 1's.
    await _set(db, Subscription, subscription.id, pending_plan_version=2)
    moved = await _check(db, graphql_schema, keys)
    assert _has_line(moved, "PLAN", "Metered plan (monthly)", "1", "700000")
    assert _has_line(moved, "SEATS", "Agents above the 2 included (monthly)", "1", "30000")
    assert _has_line(moved, "USAGE", "Messages above the 100 included per month", "1051", "526")
    # To the current version: the plan's row.
    await _set(db, Subscription, subscription.id, pending_plan_version=3)
    assert _has_line(await _check(db, graphql_schema, keys), "PLAN", "Metered plan (monthly)", "1", "900000")


async def test_a_scheduled_plan_change_and_pending_items(db, graphql_schema, acme):
    keys, subscription, plan = acme
    # Oldest first, the id after a tie (ids against the order of their creation).
    await _item(db, keys.organization_id, "Onboarding", 150000, 2, at=NOW - timedelta(days=2), id=uuid.UUID(int=9))
    await _item(db, keys.organization_id, 'Setup "premium" \\ ünïcödé', 99000, id=uuid.UUID(int=2))
    await _item(db, keys.organization_id, "Same instant", 1000, id=uuid.UUID(int=1))
    await _item(db, keys.organization_id, "Dollar training", 4900, currency="USD")  # another currency: left out
    await _item(db, keys.organization_id, "Deleted", 7000, deleted_at=NOW)  # deleted while pending: left out
    invoice = await make_invoice(db, keys.organization_id)
    await _item(db, keys.organization_id, "Invoiced", 8000, invoice_id=invoice.id)  # billed already: left out
    own = await _check(db, graphql_schema, keys)
    assert [line for line in _lines(own) if line[0] == "ONE_OFF"] == [
        ("ONE_OFF", "Onboarding", "2", "300000"), ("ONE_OFF", "Same instant", "1", "1000"),
        ("ONE_OFF", 'Setup "premium" \\ ünïcödé', "1", "99000")]
    # A period change at the period's end: priced annual, re-anchored at the end.
    await _set(db, Subscription, subscription.id, pending_billing_period=BillingPeriod.ANNUAL)
    annual = await _check(db, graphql_schema, keys)
    assert _has_line(annual, "PLAN", "Metered plan (annual)", "1", "5000000")
    assert b'"periodStart":"2026-05-20T15:00:00Z","periodEnd":"2027-05-20T15:00:00Z"' in annual
    # A plan change: the other plan's current version (not the frozen one of the number Acme pays), usage still at
    # the charges of the version the ended period was on.
    team = await make_plan(db, name="Team", monthly=800000, per_agent=40000, included_agents=1)
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.id == team.id).values(version=2))
        session.add(PlanVersion(plan_id=team.id, number=1, base_price_monthly=1, base_price_annual=1, per_agent_price=1,
                                created_at=T0))
    await _set(db, Subscription, subscription.id, pending_plan_id=team.id)
    changed = await _check(db, graphql_schema, keys)
    assert _lines(changed)[:2] == [("PLAN", "Team plan (annual)", "1", "8000000"),
                                   ("SEATS", "Agents above the 1 included (annual)", "2", "960000")]
    assert _has_line(changed, "USAGE", "Messages above the 100 included per month", "1051", "526")
    # A subscription in dollars: its currency's items (the rupiah ones left out), no tax rate of its currency.
    dollars = await make_plan(db, name="Dollars", currency="USD", monthly=4900, annual=49000, included_agents=5)
    await _set(db, Subscription, subscription.id, plan_id=dollars.id, pending_plan_id=None,
               pending_billing_period=None)
    dollar = await _check(db, graphql_schema, keys)
    assert _lines(dollar) == [("PLAN", "Dollars plan (monthly)", "1", "49.00"),
                              ("ONE_OFF", "Dollar training", "1", "49.00")]
    assert b'"currency":"USD"' in dollar and b'"taxName":null,"taxRate":null' in dollar


async def test_add_ons_with_the_gauge_and_without(db, graphql_schema, acme):
    keys, subscription, _ = acme
    await attach_addons(db, subscription.id)
    stored = await _check(db, graphql_schema, keys)
    assert _has_line(stored, "ADDON", "Zeta seats add-on, per agent (monthly)", "6", "6000")  # 2 x the 3 agents stored
    assert stored.index(b"Zeta seats") < stored.index(b"Alpha flat")  # the add-ons' order: sort order first
    await set_agents(db, keys.organization_id, 7, now=NOW)
    gauge = await _check(db, graphql_schema, keys)
    assert _has_line(gauge, "ADDON", "Zeta seats add-on, per agent (monthly)", "14", "14000")
    assert _has_line(gauge, "SEATS", "Agents above the 2 included (monthly)", "5", "125000")


async def test_coupons_tax_and_account_credit(db, graphql_schema, acme):
    keys, subscription, _ = acme
    forever = await make_coupon(db, code="TENOFF", percent_off=10, duration=CouponDuration.FOREVER)
    await _set(db, Subscription, subscription.id, coupon_id=forever.id, coupon_periods_remaining=None)
    applied = await _check(db, graphql_schema, keys)
    assert b'"discount":{"amount":"59033","formatted":"Rp 59,033"}' in applied, applied  # 10% of 590,332
    # A repeating coupon with no period left: none.
    spent = await make_coupon(db, code="SPENT", percent_off=50, duration=CouponDuration.REPEATING, months=3)
    await _set(db, Subscription, subscription.id, coupon_id=spent.id, coupon_periods_remaining=0)
    assert b'"discount":{"amount":"0","formatted":"Rp 0"}' in await _check(db, graphql_schema, keys)
    # A fixed one with periods left.
    fixed = await make_coupon(db, code="FIXED", amount_off=100000, currency="IDR", duration=CouponDuration.REPEATING,
                              months=2)
    await _set(db, Subscription, subscription.id, coupon_id=fixed.id, coupon_periods_remaining=2)
    assert b"100,000" in await _check(db, graphql_schema, keys)
    # The tax rate in force at the period's end: a newer one from before it, not one from after it.
    await add_tax_rate(db, name="PPN 2026", rate=Decimal("0.11"), currency="IDR",
                       effective_from=datetime(2026, 5, 1, tzinfo=UTC))
    await add_tax_rate(db, name="PPN 2027", rate=Decimal("0.125"), currency="IDR",
                       effective_from=datetime(2026, 5, 20, 15, 0, 0, 1, tzinfo=UTC))
    taxed = await _check(db, graphql_schema, keys)
    assert b'"taxName":"PPN 2026","taxRate":"0.11"' in taxed
    # Account credit, spent after tax.
    await set_credit(db, keys.organization_id, 250000)
    credited = await _check(db, graphql_schema, keys)
    assert b'"creditApplied":{"amount":"250000"}' in credited


async def test_what_ends_and_who_names_which_organization(db, graphql_schema, acme):
    keys, subscription, _ = acme
    acme_id = relay.to_base64("Organization", keys.organization_id)
    globex_id = relay.to_base64("Organization", keys.other_organization_id)
    own = await _check(db, graphql_schema, keys)
    assert await _same_answer(db, graphql_schema, keys.super_admin, acme_id) == own
    assert await _same_answer(db, graphql_schema, keys.member, acme_id) == own
    # Nothing live: null, after the one read (Globex has none; a tenant naming it reads nothing of it).
    null = b'{"data":{"subscription":null}}'
    assert await _same_answer(db, graphql_schema, keys.other_owner, statements=3) == null
    assert await _same_answer(db, graphql_schema, keys.owner, globex_id, statements=3) == null
    assert await _same_answer(db, graphql_schema, keys.super_admin, globex_id, statements=3) == null
    # A malformed id, and a super-admin naming none: the same errors on both paths.
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.owner, "not-an-id")
    assert b'"errors"' in await _same_answer(db, graphql_schema, keys.super_admin)
    # Canceling at the period's end: nothing renews (no second read); canceled: none live.
    await _set(db, Subscription, subscription.id, cancel_at_period_end=True)
    ending = await _check(db, graphql_schema, keys, statements=3)
    assert b'"upcomingInvoice":null,"again":null' in ending
    await _set(db, Subscription, subscription.id, status=SubscriptionStatus.CANCELED)
    assert await _check(db, graphql_schema, keys, statements=3) == null


async def test_other_fields_beside_it_are_answered_by_their_resolvers(db, graphql_schema, acme):
    keys, subscription, _ = acme
    coupon = await make_coupon(db, code="TEN", percent_off=10)
    await _set(db, Subscription, subscription.id, coupon_id=coupon.id, coupon_periods_remaining=1,
               pending_billing_period=BillingPeriod.ANNUAL, spending_cap=10000)
    query = """query S($org: ID) { subscription(organizationId: $org) {
      id agentCount isTrial expiredTrial trialEndDate plan { name perAgentPrice { formatted } }
      addons { name } coupon { code periodsRemaining } pendingChange { billingPeriod plan { name } }
      spendingCap { minimumRequiredCap { amount } requireIncrease }
      upcomingInvoice { total { amount formatted } lines { kind amount { amount } } }
    } }"""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": {"org": None}},
                                          keys.owner, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content and answers.answered
    assert b'"coupon":{"code":"TEN","periodsRemaining":1}' in answers.by_plan.content
    assert answers.plan_statements.count < answers.generic_statements.count
