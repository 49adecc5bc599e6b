"""``Plan.charges`` on the SQL tier (``graphql.catalog.charge_types``' forms, ``Children`` of the plan's current
version, ``JsonItems`` of the tiers, ``Nested(exact=True)`` Money): the same bytes as graphql-core over
``charges_by_plan`` and ``Charge.of`` on both databases, below ``plans``, ``plan(slug)``, ``subscription { plan }`` and
``planLimits { plans }``. The charges are written as ``createPlan`` and ``updatePlan`` write them (the services), and
cover every model; fractions of a minor unit in a zero-, two- and three-place currency; amounts that round half up
in ``formatted`` (one carrying to the next power of ten); tiers with a flat amount and a null ``upTo``; the largest
amounts and unit counts the inputs allow (and a stored amount past 2^53, beyond them); a plan with two versions (only
the current one's charges); a plan with none. And the deepest places of charges (a pending change's plan in a page of
subscriptions, a coupon's plans): on the SQL tier still, and a selection too deep for SQLite's parser keeps its Python
plan (``compiled.sql.parses_on_sqlite``) rather than send a statement that fails."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from billing_graphql.db.models import Metric, PlanCharge, Subscription, TestClock
from billing_graphql.domain.catalog import LimitSpec
from billing_graphql.domain.charges import MAX_UNITS, ChargeModel, ChargeSpec, TierSpec
from billing_graphql.domain.plan_versions import ApplyTo
from billing_graphql.graphql.compiled.dialects import Sqlite
from billing_graphql.graphql.compiled.sql import NoSqlForm, parses_on_sqlite
from billing_graphql.services.catalog.plans import PlanPatch, PlanSpec, create_plan, update_plan
from tests.factories import make_coupon, make_subscription
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
PAST_2_53 = 2**53 + 1

MONEY = "amount currency formatted"
CHARGES = f"""charges {{ __typename metric {{ code }} model includedUnits unitAmount {{ {MONEY} }} packageSize
  tiers {{ upTo unitAmount {{ {MONEY} }} flatAmount {{ {MONEY} }} t: upTo }}
  again: unitAmount {{ formatted __typename amount }} }}"""

PLANS = f"query {{ plans(includeInactive: true) {{ slug currency version {CHARGES} }} }}"
PLAN = f"query P($slug: String) {{ plan(slug: $slug) {{ slug version {CHARGES} c2: charges {{ model }} }} }}"
SUBSCRIPTION = f"query {{ subscription {{ planVersion plan {{ slug version {CHARGES} }} }} }}"
PLAN_LIMITS = f"query {{ planLimits {{ plans {{ slug {CHARGES} }} }} }}"
# The deepest places of charges: a plan in a pending change of a page of subscriptions, in a coupon's list of plans.
DEEP = [f"query {{ subscriptions {{ edges {{ node {{ pendingChange {{ plan {{ slug {CHARGES} }} }} }} }} }} }}",
        f"query {{ subscription {{ pendingChange {{ plan {{ slug {CHARGES} }} }} }} }}",
        f"query {{ coupons {{ edges {{ node {{ code applicablePlans {{ slug {CHARGES} }} }} }} }} }}"]


def _spec(slug: str, currency: str, charges: list[ChargeSpec], **values) -> PlanSpec:
    return PlanSpec(name=slug.title(), slug=slug, base_price_monthly=Decimal(10), currency=currency,
                    charges=charges, **values)


@pytest.fixture
async def catalog(db):
    """Plans as createPlan writes them: dollars, rupiah (the organization's currency), dinars, one with two versions
    that Acme subscribes to (a change to dollars pending), one without charges; a coupon for two of them; the test
    clock at NOW."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    dollars = await create_plan(db, None, _spec("dollars", "USD", [
        ChargeSpec("messages", ChargeModel.STANDARD, 1000, Decimal("0.0015")),  # $0.0015: "0.0015", "$0.00"
        ChargeSpec("api_calls", ChargeModel.PACKAGE, 0, Decimal("7.005"), package_size=PAST_2_53),  # half up: $7.01
        ChargeSpec("contacts", ChargeModel.GRADUATED, 100, tiers=[
            TierSpec(1000, Decimal("0.10")), TierSpec(None, Decimal("0.05"), Decimal("20.00"))]),
        ChargeSpec("channels", ChargeModel.VOLUME, MAX_UNITS, tiers=[
            TierSpec(5, Decimal("3")), TierSpec(MAX_UNITS - 1, Decimal("9999999999999.999999"), Decimal("0.004999")),
            TierSpec(None, Decimal("0"), Decimal("0.005"))]),
    ]), now=NOW)
    await create_plan(db, None, _spec("rupiah", "IDR", [
        ChargeSpec("api_calls", ChargeModel.STANDARD, 0, Decimal("0.5")),  # Rp 0.5: "0.5", "Rp 1"
        ChargeSpec("messages", ChargeModel.GRADUATED, PAST_2_53, tiers=[
            TierSpec(100, Decimal("2.499999"), Decimal("0")),
            TierSpec(PAST_2_53, Decimal("999999999999999.5"), Decimal("1000000000000000")),
            TierSpec(None, Decimal("0.000001"))]),
        ChargeSpec("contacts", ChargeModel.PACKAGE, 3, Decimal("1000000000000000"), package_size=1),
    ], limits=[LimitSpec("messages", 5000)]), now=NOW)
    await create_plan(db, None, _spec("dinars", "KWD", [
        ChargeSpec("messages", ChargeModel.STANDARD, 0, Decimal("0.0005")),  # half a fils: "0.0005", "KWD 0.001"
        ChargeSpec("agents", ChargeModel.VOLUME, 1, tiers=[TierSpec(2, Decimal("1.2345"), Decimal("0.1")),
                                                           TierSpec(None, Decimal("1"), Decimal("1.000000001"))]),
    ]), now=NOW)
    versioned = await create_plan(db, None, _spec("versioned", "IDR", [
        ChargeSpec("messages", ChargeModel.STANDARD, 10, Decimal("100")),
        ChargeSpec("api_calls", ChargeModel.STANDARD, 0, Decimal("7"))]), now=NOW)
    subscription = await make_subscription(db, keys.organization_id, plan=versioned, start=NOW)
    await update_plan(db, None, versioned.id, PlanPatch(charges=[
        ChargeSpec("api_calls", ChargeModel.PACKAGE, 5, Decimal("250.25"), package_size=100),
        ChargeSpec("messages", ChargeModel.VOLUME, 0,
                   tiers=[TierSpec(10, Decimal("1")), TierSpec(None, Decimal("0.5"))]),
    ]), now=NOW, apply_to=ApplyTo.NEW_SUBSCRIPTIONS)
    await create_plan(db, None, _spec("bare", "IDR", [], sort_order=9), now=NOW)
    async with db.write() as session:  # a change to the dollar plan pending at the period's end
        await session.execute(update(Subscription).where(Subscription.id == subscription.id)
                              .values(pending_plan_id=dollars.id))
    await make_coupon(db, code="USAGE", plans=[dollars, versioned])
    return keys


async def _same_answer(db, graphql_schema, token: str, query: str, variables: dict | None = None) -> bytes:
    answers = await answers_on_both_paths(db, graphql_schema, {"query": query, "variables": variables or {}}, token,
                                          test_clock=True)
    assert answers.by_plan.status_code == answers.by_graphql_core.status_code == 200
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert b'"errors"' not in answers.by_plan.content, answers.by_plan.content
    assert answers.answered, answers.by_plan.content  # the compiled plan answered, not graphql-core
    assert answers.plan_statements.count <= answers.generic_statements.count, (
        answers.plan_statements.statements, answers.generic_statements.statements)
    return answers.by_plan.content


def _on_sql_tier(graphql_schema, query: str) -> bool:
    """The document's root is answered by the SQL tier (every selected field has a SQL form)."""
    from billing_graphql.graphql.schema import compiled_documents
    from tests.helpers import test_settings

    plan = compiled_documents(graphql_schema, test_settings("sqlite+aiosqlite://")).plan_for({"query": query})
    return plan is not None and plan.sql is not None and len(plan.sql.by_key) == 1


@pytest.mark.parametrize("query", [PLANS, PLAN, SUBSCRIPTION, PLAN_LIMITS, *DEEP])
def test_charges_keep_the_root_on_the_sql_tier(graphql_schema, query):
    assert _on_sql_tier(graphql_schema, query)


async def test_plans_charges_answer_the_same_on_both_paths(db, graphql_schema, catalog):
    keys = catalog
    answer = await _same_answer(db, graphql_schema, keys.super_admin, PLANS)
    for expected in (
            # Fractions of a minor unit kept in amount, rounded half up in formatted; the whole currency's places.
            b'{"__typename":"Charge","metric":{"code":"messages"},"model":"STANDARD","includedUnits":"1000",'
            b'"unitAmount":{"amount":"0.0015","currency":"USD","formatted":"$0.00"},"packageSize":null,"tiers":[],'
            b'"again":{"formatted":"$0.00","__typename":"Money","amount":"0.0015"}}',
            b'"model":"PACKAGE","includedUnits":"0",'
            b'"unitAmount":{"amount":"7.005","currency":"USD","formatted":"$7.01"},'
            b'"packageSize":"9007199254740993","tiers":[]',
            b'"tiers":[{"upTo":"1000","unitAmount":{"amount":"0.10","currency":"USD","formatted":"$0.10"},'
            b'"flatAmount":{"amount":"0.00","currency":"USD","formatted":"$0.00"},"t":"1000"},'
            b'{"upTo":null,"unitAmount":{"amount":"0.05","currency":"USD","formatted":"$0.05"},'
            b'"flatAmount":{"amount":"20.00","currency":"USD","formatted":"$20.00"},"t":null}]',
            # The largest amount the inputs allow, rounding up to the next power of ten; units up to 2^63 - 1.
            b'"includedUnits":"9223372036854775807"',
            b'{"upTo":"9223372036854775806","unitAmount":{"amount":"9999999999999.999999","currency":"USD",'
            b'"formatted":"$10,000,000,000,000.00"},"flatAmount":{"amount":"0.004999","currency":"USD",'
            b'"formatted":"$0.00"}',
            b'"flatAmount":{"amount":"0.005","currency":"USD","formatted":"$0.01"}',
            b'"unitAmount":{"amount":"0.5","currency":"IDR","formatted":"Rp 1"}',
            b'{"upTo":"9007199254740993","unitAmount":{"amount":"999999999999999.5","currency":"IDR",'
            b'"formatted":"Rp 1,000,000,000,000,000"},"flatAmount":{"amount":"1000000000000000","currency":"IDR",'
            b'"formatted":"Rp 1,000,000,000,000,000"}',
            b'{"upTo":null,"unitAmount":{"amount":"0.000001","currency":"IDR","formatted":"Rp 0"}',
            b'"unitAmount":{"amount":"0.0005","currency":"KWD","formatted":"KWD 0.001"}',
            b'"flatAmount":{"amount":"1.000000001","currency":"KWD","formatted":"KWD 1.000"}',
            b'{"slug":"bare","currency":"IDR","version":1,"charges":[]}'):
        assert expected in answer, (expected, answer)
    # Only the current version's charges, in their order.
    assert (b'{"slug":"versioned","currency":"IDR","version":2,"charges":[{"__typename":"Charge","metric":'
            b'{"code":"api_calls"},"model":"PACKAGE","includedUnits":"5","unitAmount":{"amount":"250.25",'
            b'"currency":"IDR","formatted":"Rp 250"}') in answer
    assert answer.count(b'"model":"STANDARD","includedUnits":"10"') == 0


async def test_plan_and_subscription_charges_answer_the_same_on_both_paths(db, graphql_schema, catalog):
    keys = catalog
    for slug in ("dollars", "rupiah", "dinars", "versioned", "bare", "none"):
        answer = await _same_answer(db, graphql_schema, keys.owner, PLAN, {"slug": slug})
        assert (b'"plan":null' in answer) == (slug == "none")
    # Acme pays the first version of "versioned"; its plan shows the current one's charges.
    answer = await _same_answer(db, graphql_schema, keys.owner, SUBSCRIPTION)
    assert answer.startswith(b'{"data":{"subscription":{"planVersion":1,"plan":{"slug":"versioned","version":2,"charges":'
                             b'[{"__typename":"Charge","metric":{"code":"api_calls"},"model":"PACKAGE"'), answer
    assert b'"tiers":[{"upTo":"10","unitAmount":{"amount":"1","currency":"IDR","formatted":"Rp 1"}' in answer
    assert b'"subscription":null' in await _same_answer(db, graphql_schema, keys.other_owner, SUBSCRIPTION)
    # planLimits: the active plans in the organization's currency.
    answer = await _same_answer(db, graphql_schema, keys.owner, PLAN_LIMITS)
    assert b'"slug":"rupiah"' in answer and b'"slug":"dollars"' not in answer


async def test_a_stored_amount_past_2_53_answers_the_same_on_both_paths(db, graphql_schema, catalog):
    """Beyond what the inputs allow (10^15 minor units): the SQL is exact all the same (SQLite's own numbers are not
    past 2^53)."""
    keys = catalog
    async with db.write() as session:
        api_calls = await session.scalar(select(Metric.id).where(Metric.code == "api_calls"))
        await session.execute(update(PlanCharge)
                              .where(PlanCharge.metric_id == api_calls, PlanCharge.unit_amount == Decimal("0.5"))
                              .values(unit_amount=Decimal("9007199254740993.5")))
    answer = await _same_answer(db, graphql_schema, keys.owner, PLAN, {"slug": "rupiah"})
    assert (b'"unitAmount":{"amount":"9007199254740993.5","currency":"IDR","formatted":"Rp 9,007,199,254,740,994"}'
            in answer), answer


async def test_the_deepest_charges_answer_the_same_on_both_paths(db, graphql_schema, catalog):
    keys = catalog
    for query in DEEP:
        staff = "subscription {" not in query  # the subscriptions and coupons lists are the staff's
        answer = await _same_answer(db, graphql_schema, keys.super_admin if staff else keys.owner, query)
        assert b'"slug":"dollars","charges":[{"__typename":"Charge","metric":{"code":"messages"}' in answer, answer


def test_a_selection_too_deep_for_sqlites_parser_has_no_sql_form():
    shallow = "coalesce(" * 10 + "1" + ", 2)" * 10
    parses_on_sqlite([shallow], 2, "shallow")
    with pytest.raises(NoSqlForm, match="too deep for SQLite's parser"):
        parses_on_sqlite(["coalesce(" * 40 + "1" + ", 2)" * 40], 0, "deep")


async def test_a_document_too_deep_for_sqlite_keeps_its_python_plan(db, graphql_schema, catalog, monkeypatch):
    """Lists written deeper than SQLite's parser reads: the document keeps its Python plan (on both databases, as one
    plan serves both), answering the same with no statement that fails."""
    from billing_graphql.graphql import schema

    monkeypatch.setattr(schema, "_COMPILED", {})  # plans made anew (the process keeps them per schema)
    list_text = Sqlite.list_text
    monkeypatch.setattr(Sqlite, "list_text", staticmethod(
        lambda item, source, order: "(SELECT " * 12 + list_text(item, source, order) + ")" * 12))
    assert not _on_sql_tier(graphql_schema, SUBSCRIPTION)
    answers = await answers_on_both_paths(db, graphql_schema, {"query": SUBSCRIPTION}, catalog.owner, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert b'"errors"' not in answers.by_plan.content and answers.answered
    assert answers.plan_statements.count <= answers.generic_statements.count


async def test_charges_with_the_same_position_answer_in_the_same_order_on_both_paths(db, graphql_schema, catalog):
    """The services write each version's charges at positions 0, 1, ...; rows written otherwise (a script, a test
    factory) may share one. Both paths then order them by id after the position, never as the database happens to."""
    from billing_graphql.db.models import Plan

    keys = catalog
    async with db.write() as session:
        await session.execute(update(PlanCharge).values(position=0))
    answer = await _same_answer(db, graphql_schema, keys.owner, PLAN, {"slug": "rupiah"})
    shown = [part.split(b'"')[0].decode() for part in answer.split(b'"metric":{"code":"')[1:]]
    async with db.read() as session:
        rupiah = await session.scalar(select(Plan).where(Plan.slug == "rupiah"))
        by_id = (await session.scalars(select(Metric.code).join(PlanCharge, PlanCharge.metric_id == Metric.id)
                                       .where(PlanCharge.plan_id == rupiah.id, PlanCharge.version == rupiah.version)
                                       .order_by(PlanCharge.id))).all()
    assert len(by_id) >= 2 and shown == list(by_id), (shown, by_id)
