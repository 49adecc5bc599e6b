"""``analytics`` on the SQL tier (``graphql.analytics.schema.analytics_query``: a computed object, the report read in
one statement by ``services.analytics.report.revenue_analytics_read``, its figures bound as ``analytics_row``): the
same bytes as graphql-core over ``revenue_analytics`` and ``Analytics.of`` on both databases, with fewer statements.

The data: the worked example of tests/services/test_analytics_worked_example.py in USD (2 decimals: a trial
conversion, a downgrade, a refund, a failed payment, cancellations); 60 subscriptions of
tests/analytics_factories.seed_history in IDR (0 decimals) from March 2025 (upgrades, cancellations, failed attempts:
churn and failure rates that are not round), with an open and an uncollectible IDR invoice; plans with no
subscriptions (an active one: shown; an inactive one: not), an inactive plan with live subscriptions (shown), a EUR
plan (a currency with no subscriptions); the test clock at the worked example's NOW (10 April 2026)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update

from billing_graphql.db.models import Invoice, Plan, TestClock
from billing_graphql.domain.status import InvoiceStatus
from tests.analytics_factories import seed_history
from tests.factories import make_invoice, make_organization, make_plan
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths
from tests.perf.test_compiled_usage_amounts import PAID, _charges
from tests.services.test_analytics_worked_example import NOW, build

REGISTERED = (Path(__file__).parents[2] / "queries" / "admin" / "Analytics.graphql").read_text()
ARGUMENTS = "(from: $from, to: $to, currency: $currency)"
VARIABLES = "($from: Date!, $to: Date!, $currency: String!)"
MONEY = "{ __typename amount currency formatted }"
MONTH_MONEY = ("mrr", "arr", "newMrr", "expansionMrr", "contractionMrr", "churnedMrr", "netRevenue", "arpu",
               "uncollectible")
# Every field, every Money leaf, __typename at each level; the plans with their prices and limits.
EVERYTHING = f"""query E{VARIABLES} {{ analytics{ARGUMENTS} {{
  __typename mrr {MONEY} arr {MONEY} outstanding {MONEY} failedPaymentsRate
  byStatus {{ __typename status count }}
  byPlan {{ __typename subscriptions mrr {MONEY} plan {{ __typename id name slug currency isActive sortOrder
    basePriceMonthly {MONEY} limits {{ metric {{ code }} limit }} }} }}
  months {{ __typename month newSubscriptions churnedSubscriptions churnRate trialConversions
    {" ".join(f"{name} {MONEY}" for name in MONTH_MONEY)} }}
}} }}"""
# Deeper: each plan's charges and their tiers (Money.exact), beside every month's Money.
DEEPER = EVERYTHING.replace("limits { metric { code } limit }",
                            f"charges {{ metric {{ code }} model unitAmount {MONEY} "
                            f"tiers {{ __typename upTo unitAmount {MONEY} flatAmount {MONEY} }} }}")
# Subsets of fields, in other orders, under aliases; two analytics of one request (each its own statement).
SUBSETS = [
    f"query S{VARIABLES} {{ analytics{ARGUMENTS} {{ months {{ month }} }} }}",
    f"query S{VARIABLES} {{ analytics{ARGUMENTS} {{ __typename }} }}",
    f"query S{VARIABLES} {{ a: analytics{ARGUMENTS} {{ rate: failedPaymentsRate total: mrr {{ formatted }} "
    "months { arpu { formatted } churnRate m: month n: netRevenue { currency amount } } "
    "s: byStatus { count } p: byPlan { m: mrr { formatted } plan { slug } } } }",
    f"query S{VARIABLES} {{ a: analytics{ARGUMENTS} {{ byPlan {{ subscriptions }} }} "
    f"b: analytics(from: \"2025-12-15\", to: \"2026-01-15\", currency: $currency) {{ outstanding {{ formatted }} "
    "months { month newMrr { formatted } } } clock { now } }",
]
# The registered document's ranges: a year and more, one day, crossing a year, in the future, a month now.
RANGES = [("2025-01-01", "2026-12-31"), ("2026-01-16", "2026-01-16"), ("2025-11-15", "2026-02-10"),
          ("2099-01-01", "2099-03-31"), ("2026-04-01", "2026-04-30"), ("2025-03-01", "2025-03-31")]


@pytest.fixture
async def figures(db, settings):
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    await build(db, settings)
    await seed_history(db, 60, months=12, currency="IDR", first_month=datetime(2025, 3, 1, tzinfo=UTC))
    # Plans with no subscriptions: an active USD plan first in order, an inactive one (not shown), a EUR plan.
    unused = await make_plan(db, name="Unused", slug="unused", currency="USD", monthly=500, sort_order=0,
                             limits={"agents": 2})
    await _charges(db, unused.id, 1, PAID)
    await make_plan(db, name="Retired", slug="retired", currency="USD", monthly=700, active=False)
    await make_plan(db, name="Euro", slug="euro", currency="EUR", monthly=1900)
    async with db.write() as session:  # Pro is withdrawn: shown while it has live subscriptions
        await session.execute(update(Plan).where(Plan.name == "Pro", Plan.currency == "USD").values(is_active=False))
    debtor = await make_organization(db, "Debtor")
    await make_invoice(db, debtor.id, status=InvoiceStatus.OPEN, created_at=datetime(2026, 2, 3, tzinfo=UTC))
    bad = await make_invoice(db, debtor.id, status=InvoiceStatus.UNCOLLECTIBLE, created_at=datetime(2026, 1, 3,
                                                                                                 tzinfo=UTC))
    async with db.write() as session:
        await session.execute(update(Invoice).where(Invoice.id == bad.id).values(
            marked_uncollectible_at=datetime(2026, 2, 27, 13, tzinfo=UTC), amount_paid=120_000))
    return keys


async def _same(db, graphql_schema, token: str, variables: dict, query: str = REGISTERED,
                sql_tier: bool = True) -> tuple[bytes, object]:
    """The answer, the same bytes on both paths; where it is no error, written by the SQL tier's statement
    (``sql_tier``), with fewer statements than the generic path."""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": variables}, token,
                                          test_clock=True)
    assert answers.by_plan.status_code == answers.by_graphql_core.status_code
    assert answers.by_plan.content == answers.by_graphql_core.content, (variables, query)
    if b'"errors"' not in answers.by_graphql_core.content:
        assert answers.answered, answers.by_plan.content
        written = [statement for statement in answers.plan_statements.statements if "bgq_months" in statement]
        assert bool(written) == sql_tier, answers.plan_statements.statements
        assert answers.plan_statements.count < answers.generic_statements.count, answers.plan_statements.statements
    return answers.by_plan.content, answers


def variables(first: str, last: str, currency: str) -> dict[str, str]:
    return {"from": first, "to": last, "currency": currency}


@pytest.mark.parametrize("currency", ["USD", "IDR", "EUR", "KWD"])
async def test_the_registered_document_answers_the_same_on_both_paths(db, graphql_schema, figures, currency):
    for first, last in RANGES:
        answer, answers = await _same(db, graphql_schema, figures.super_admin, variables(first, last, currency))
        # The clock and the key; the report's read and the answer's statement; against the report's four statements.
        assert (answers.plan_statements.count, answers.generic_statements.count) == (4, 6)
        if first.startswith("2099"):
            assert b'"months":[]' in answer
        elif first == last:
            assert answer.count(b'"month":') == 1


async def test_the_figures_are_the_worked_examples(db, graphql_schema, figures):
    """Not vacuous: the SQL tier's answer holds the figures of the data (non-round rates, both exponents, the plans
    shown and not shown)."""
    usd, _ = await _same(db, graphql_schema, figures.super_admin, variables("2026-01-01", "2026-03-31", "USD"))
    assert b'"failedPaymentsRate":"0.3333"' in usd
    assert b'"outstanding":{"amount":"10.00","currency":"USD","formatted":"$10.00"}' in usd
    assert re.findall(rb'"name":"(\w+)"', usd) == [b"Unused", b"Basic", b"Pro", b"Starter"]
    assert usd.count(b'"name":"Pro"') == 1 and b'"Retired"' not in usd and b'"Euro"' not in usd
    assert (b'{"plan":{"id":"' in usd and b'"name":"Unused","slug":"unused"},"subscriptions":0,'
            b'"mrr":{"amount":"0.00","currency":"USD"}}' in usd)
    assert (b'{"month":"2026-01","mrr":{"amount":"95.00","currency":"USD"},"arr":{"amount":"1140.00","currency":"USD"},'
            b'"newSubscriptions":3,"churnedSubscriptions":1,"churnRate":"0.5000"') in usd
    assert b'"netRevenue":{"amount":"-15.00"}' in usd

    idr, _ = await _same(db, graphql_schema, figures.super_admin, variables("2025-03-01", "2026-03-31", "IDR"))
    rates = {Decimal(rate.decode()) for rate in re.findall(rb'"churnRate":"([0-9.]+)"', idr)}
    assert any(rate * 1000 % 1 for rate in rates), rates  # to four places, not round
    failed = re.search(rb'"failedPaymentsRate":"([0-9.]+)"', idr).group(1)
    assert failed == b"0.0909"  # 6 failed attempts of 66
    assert b'"outstanding":{"amount":"1110000","currency":"IDR","formatted":"Rp 1,110,000"}' in idr
    assert b'{"month":"2026-02",' in idr and b'"uncollectible":{"amount":"990000"}}' in idr  # 1,110,000 - 120,000
    assert b'"formatted":"Rp ' in idr and b'"amount":"0.00"' not in idr

    euro, _ = await _same(db, graphql_schema, figures.super_admin, variables("2026-01-01", "2026-02-28", "eur"))
    assert b'"byStatus":[{"status":"TRIALING","count":0},' in euro and b'"slug":"euro"},"subscriptions":0' in euro
    assert b'"currency":"EUR"' in euro


async def test_selections_answer_the_same_on_both_paths(db, graphql_schema, figures):
    for query in SUBSETS:
        for first, last in (("2025-11-15", "2026-02-10"), ("2099-01-01", "2099-01-31")):
            await _same(db, graphql_schema, figures.super_admin, variables(first, last, "USD"), query=query)
    # Every field: within SQLite's parser stack (``compiled.sql.parses_on_sqlite``), on the SQL tier.
    for currency in ("USD", "IDR"):
        answer, _ = await _same(db, graphql_schema, figures.super_admin,
                                variables("2025-01-01", "2026-06-30", currency), query=EVERYTHING)
        assert (b'"name":"Unused","slug":"unused",' in answer) == (currency == "USD")
        assert b'"limits":[{"metric":{"code":"agents"},"limit":2}]' in answer or currency == "IDR"
    answer, _ = await _same(db, graphql_schema, figures.super_admin, variables("2025-01-01", "2026-06-30", "USD"),
                            query=DEEPER)
    assert b'"tiers":[{"__typename":"ChargeTier","upTo":"2","unitAmount"' in answer


async def test_more_plans_than_sqlite_unites_in_one_select(db, graphql_schema, figures):
    """A relation of more rows than SQLite's UNION ALL holds (``columns.COMPOUND_TERMS``) is a UNION ALL of them."""
    from billing_graphql.graphql.columns import COMPOUND_TERMS
    from tests.analytics_factories import _plan

    async with db.write() as session:
        session.add_all(_plan(f"Tier {number:04d}", 100 + number, "SGD", NOW) for number in range(COMPOUND_TERMS + 3))
    answer, _ = await _same(db, graphql_schema, figures.super_admin, variables("2026-01-01", "2026-03-31", "SGD"))
    assert answer.count(b'"plan":{"id"') == COMPOUND_TERMS + 3
    assert b'"name":"Tier 0000"' in answer and answer.rindex(b'"name":"Tier 0502"') > answer.rindex(b'"Tier 0501"')


@pytest.mark.parametrize("role", ["owner", "admin", "member", "partner"])
async def test_other_roles_are_forbidden_on_both_paths(db, graphql_schema, figures, role):
    answer, _ = await _same(db, graphql_schema, getattr(figures, role), variables("2026-01-01", "2026-03-31", "USD"))
    assert b'"code":"FORBIDDEN"' in answer and b'"analytics":null' in answer


@pytest.mark.parametrize("first,last,currency,message", [
    ("2026-03-01", "2026-01-31", "USD", b"is after 'to'"),
    ("2000-01-01", "2026-01-01", "USD", b"at most 120 months"),
    ("2026-01-01", "2026-03-31", "XYZ", b"Unknown currency"),
    ("2026-01-01", "9999-12-31", "USD", b"BAD_USER_INPUT"),
])
async def test_bad_input_is_the_same_error_on_both_paths(db, graphql_schema, figures, first, last, currency, message):
    answer, _ = await _same(db, graphql_schema, figures.super_admin, variables(first, last, currency))
    assert b'"code":"BAD_USER_INPUT"' in answer and message in answer and b'"analytics":null' in answer


async def test_the_answers_statement_has_one_form_per_number_of_months_and_plans(db, figures):
    """Every figure is bound: reports of as many months and plans share the statement the SQL tier compiled once."""
    from billing_graphql.graphql.analytics.schema import analytics_row
    from billing_graphql.services.analytics.report import revenue_analytics_read

    async def pattern(first, last, currency, now=NOW):
        report = await revenue_analytics_read(db, first=datetime.fromisoformat(first).date(),
                                              last=datetime.fromisoformat(last).date(), currency=currency, now=now)
        return analytics_row(report).pattern()

    march = await pattern("2026-03-01", "2026-03-31", "USD")
    assert march == await pattern("2025-07-01", "2025-07-31", "USD") != await pattern("2026-02-01", "2026-03-31", "USD")
    assert march != await pattern("2026-03-01", "2026-03-31", "IDR")  # another number of plans


async def test_the_read_is_the_reports(db, figures):
    """The compiled path's one read gives the resolver's report (its plans by id)."""
    from dataclasses import replace

    from billing_graphql.services.analytics.report import revenue_analytics, revenue_analytics_read

    for currency, first, last in (("USD", "2025-11-01", "2026-04-30"), ("IDR", "2025-01-01", "2026-12-31"),
                                  ("EUR", "2026-01-01", "2026-01-01"), ("USD", "2099-01-01", "2099-01-31")):
        dates = dict(first=datetime.fromisoformat(first).date(), last=datetime.fromisoformat(last).date())
        read = await revenue_analytics_read(db, **dates, currency=currency, now=NOW)
        report = await revenue_analytics(db, **dates, currency=currency, now=NOW)
        assert read == replace(report, by_plan=tuple(replace(row, plan=row.plan.id) for row in report.by_plan))
        assert all(isinstance(row.plan, uuid.UUID) for row in read.by_plan)


def test_the_reads_only_parameters_are_the_currency_and_the_range():
    """The one read's constants (statuses, kinds, zeros) are written in its text (``db.prepared.constants_written``):
    as parameters too, they kept PostgreSQL from a plan for any range and currency (its generic plan cost 3-4 ms
    against 1.3 ms planned anew at each request, so it planned anew each time); written, the two cost the same."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as postgresql
    from sqlalchemy.dialects.sqlite.aiosqlite import dialect as sqlite

    from billing_graphql.services.analytics.report import _ONE_READ

    for dialect in (postgresql(), sqlite()):
        prepared = _ONE_READ.on(dialect)
        assert {name for name, _, _ in prepared.parameters} == {"currency", "start", "end"}
        assert "'CANCELED'" in prepared.text and "'movements'" in prepared.text
