"""``amount`` of ``usage.metrics`` and ``entitlements.limits`` on the SQL tier (``graphql.usage.types``' ``_amount``
over the row's ``amounts``, priced in Python by ``services.usage.amounts.metric_amounts`` after ``usage_basis``): the
same bytes as graphql-core over the services' ``usage_now`` and ``entitlements`` on both databases, and no more
statements (one more read than without amounts, only where an amount is selected and there is a live subscription).

Acme pays version 1 of its plan while the plan is at version 2 (whose charges would price it otherwise): messages
STANDARD at Rp 0.5 above 100 included (a fraction of a minor unit, rounded once, half up), API calls PACKAGE, agents
GRADUATED above one included, contacts VOLUME, integrations with every unit included, AI agents charged without a
value, channels without a charge (null). A plan change's invoice billed some messages already (``usage_billed``), of
the billing month in force or of another. Globex has counters of its own and no subscription (null amounts);
Initech pays in USD; an amount past BIGINT leaves the request to the generic path."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from strawberry import relay

from billing_graphql.db.models import Metric, Plan, PlanLimit, Subscription, TestClock
from billing_graphql.domain.charges import Charge, ChargeModel, Tier
from billing_graphql.services.catalog.charges import charge_row
from tests.factories import make_organization, make_plan, make_subscription
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths
from tests.perf.test_compiled_usage_pages import ANCHOR, NOW, _counter, _same_answer

USAGE = """query U($org: ID) { usage(organizationId: $org) {
  usageMonth metrics { metric { code } used limit amount { amount currency formatted } a2: amount { formatted } }
} }"""
ENTITLEMENTS = """query E($org: ID) { entitlements(organizationId: $org) {
  planSlug limits { metric { code } used exceeded amount { __typename currency amount } }
} }"""
BOTH = """query B($org: ID) {
  usage(organizationId: $org) { metrics { metric { code } amount { amount } } }
  entitlements(organizationId: $org) { limits { metric { code } amount { formatted } } }
}"""

PAID = {  # version 1, which Acme pays
    "messages": Charge(ChargeModel.STANDARD, 100, Decimal("0.5")),
    "api_calls": Charge(ChargeModel.PACKAGE, 0, Decimal(500), 1000),
    "agents": Charge(ChargeModel.GRADUATED, 1, tiers=(Tier(2, Decimal(1000), Decimal(250)),
                                                      Tier(None, Decimal("700.25")))),
    "contacts": Charge(ChargeModel.VOLUME, 0, tiers=(Tier(10, Decimal(100)), Tier(None, Decimal("50.5"),
                                                                                   Decimal(1000)))),
    "integrations": Charge(ChargeModel.STANDARD, None, Decimal(100)),
    "ai_agents": Charge(ChargeModel.STANDARD, 0, Decimal(100)),
}
CURRENT = {"messages": Charge(ChargeModel.STANDARD, 0, Decimal(999))}  # version 2: nobody pays it yet


async def _charges(db, plan_id: uuid.UUID, version: int, charges: dict[str, Charge]) -> None:
    async with db.write() as session:
        ids = dict((await session.execute(select(Metric.code, Metric.id))).all())
        session.add_all(charge_row(plan_id, version, position, ids[code], charge)
                        for position, (code, charge) in enumerate(charges.items()))


async def _billed(db, organization_id: uuid.UUID, keys: list[str], **quantities: int) -> None:
    """What a plan change's invoice billed (``subscriptions.usage_billed``), by metric code."""
    async with db.write() as session:
        ids = dict((await session.execute(select(Metric.code, Metric.id))).all())
        await session.execute(update(Subscription).where(Subscription.organization_id == organization_id).values(
            usage_billed={"keys": keys, "quantities": {str(ids[code]): value for code, value in quantities.items()}}))


@pytest.fixture
async def organizations(db):
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    plan = await make_plan(db, slug="metered", limits={"messages": 1000, "agents": 3, "channels": 8, "ai_agents": 0,
                                                       "api_calls": None})
    async with db.write() as session:
        await session.execute(update(Plan).where(Plan.id == plan.id).values(version=2))
    await _charges(db, plan.id, 1, PAID)
    await _charges(db, plan.id, 2, CURRENT)
    await make_subscription(db, keys.organization_id, plan=plan, start=ANCHOR)  # on version 1
    for code, key, value in (("messages", "2026-04", 1151), ("messages", "2026-05", 7), ("api_calls", "2026-04", 2500),
                             ("agents", "current", 6), ("agents", "2026-04", 99), ("contacts", "current", 12),
                             ("integrations", "current", 1), ("channels", "current", 2)):
        await _counter(db, keys.organization_id, code, key, value)
    for code, key, value in (("messages", "2026-04", 1000000), ("messages", "2026-05", 4), ("agents", "current", 50)):
        await _counter(db, keys.other_organization_id, code, key, value)
    return keys


def _metric(code: str, used: str, limit: str, amount: str | None, formatted: str | None = None) -> bytes:
    """A metric of ``USAGE``'s answer, its amount in rupiah (``formatted``: its digits grouped, else ``amount``)."""
    formatted = f"Rp {formatted or amount}"
    money = "null" if amount is None else f'{{"amount":"{amount}","currency":"IDR","formatted":"{formatted}"}}'
    again = "null" if amount is None else f'{{"formatted":"{formatted}"}}'
    return (f'{{"metric":{{"code":"{code}"}},"used":"{used}","limit":{limit},"amount":{money},"a2":{again}}}'
            .encode())


async def test_usage_amounts_answer_the_same_on_both_paths(db, graphql_schema, organizations):
    keys = organizations
    own = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=USAGE)
    # April's 1,151 messages: 1,051 above the 100 included at Rp 0.5 = 525.5, rounded once: 526 (version 1's price,
    # not version 2's Rp 999). 2,500 API calls: 3 packages. 6 agents, 5 above the one included: 2 at 1,000 and the
    # tier's 250, 3 at 700.25 = 4,350.75. 12 contacts: all at the second tier's 50.5 and its 1,000 = 1,606.
    # Integrations: every unit included; AI agents: charged, no value; channels: no charge.
    assert own == (b'{"data":{"usage":{"usageMonth":"2026-04","metrics":[' + b",".join((
        _metric("agents", "6", '"3"', "4351", "4,351"), _metric("ai_agents", "0", '"0"', "0"),
        _metric("api_calls", "2500", "null", "1500", "1,500"), _metric("channels", "2", '"8"', None),
        _metric("contacts", "12", "null", "1606", "1,606"), _metric("integrations", "1", "null", "0"),
        _metric("messages", "1151", '"1000"', "526"))) + b"]}}}")
    answers = await answers_on_both_paths(db, graphql_schema, {"query": USAGE}, keys.owner, test_clock=True)
    # The clock, the key; the basis, the amounts' read and the statement against the organization and subscription,
    # the metrics, the limits, the counters and the version's charges.
    assert answers.answered and (answers.plan_statements.count, answers.generic_statements.count) == (5, 7)
    # Without an amount selected, no amounts' read: as before.
    answers = await answers_on_both_paths(db, graphql_schema, {"query": USAGE.replace(
        "amount { amount currency formatted } a2: amount { formatted }", "")}, keys.owner, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content and answers.answered
    assert (answers.plan_statements.count, answers.generic_statements.count) == (4, 7)

    # A plan change's invoice billed 300 messages (and 4 agents, a GAUGE: never taken off) of this billing month:
    # 851 left, 751 above the included 100 at Rp 0.5 = 375.5: 376. Of another month's: nothing taken off.
    await _billed(db, keys.organization_id, ["2026-04"], messages=300, agents=4)
    billed = await _same_answer(db, graphql_schema, keys.super_admin, relay.to_base64("Organization", keys.organization_id),
                                sql_tier=True, query=USAGE)
    assert _metric("messages", "1151", '"1000"', "376") in billed
    assert b'"code":"agents"},"used":"6","limit":"3","amount":{"amount":"4351"' in billed
    await _billed(db, keys.organization_id, ["2026-03"], messages=300)
    assert _metric("messages", "1151", '"1000"', "526") in await _same_answer(
        db, graphql_schema, keys.owner, None, sql_tier=True, query=USAGE)
    await _billed(db, keys.organization_id, ["2026-04"], messages=5000)  # more than counted since: 0
    assert _metric("messages", "1151", '"1000"', "0") in await _same_answer(
        db, graphql_schema, keys.owner, None, sql_tier=True, query=USAGE)

    # Globex: no subscription, so no amounts (and no amounts' read); its counters are its own.
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=True, query=USAGE)
    assert other == (b'{"data":{"usage":{"usageMonth":"2026-05","metrics":[' + _metric("agents", "50", "null", None) + b","
                     + _metric("messages", "4", "null", None) + b"]}}}")
    answers = await answers_on_both_paths(db, graphql_schema, {"query": USAGE}, keys.other_owner, test_clock=True)
    assert answers.answered and (answers.plan_statements.count, answers.generic_statements.count) == (4, 5)
    assert b'"usage":null' in await _same_answer(db, graphql_schema, keys.owner, relay.to_base64(
        "Organization", keys.other_organization_id), sql_tier=True, query=USAGE)


async def test_entitlement_amounts_answer_the_same_on_both_paths(db, graphql_schema, organizations):
    keys = organizations
    free = await make_plan(db, slug="free", monthly=0, limits={"messages": 10})
    await _charges(db, free.id, 1, {"messages": Charge(ChargeModel.STANDARD, 0, Decimal(7))})  # nobody pays it
    own = await _same_answer(db, graphql_schema, keys.owner, None, sql_tier=True, query=ENTITLEMENTS)
    assert own == (b'{"data":{"entitlements":{"planSlug":"metered","limits":['
                   b'{"metric":{"code":"agents"},"used":"6","exceeded":true,'
                   b'"amount":{"__typename":"Money","currency":"IDR","amount":"4351"}},'
                   b'{"metric":{"code":"ai_agents"},"used":"0","exceeded":false,'
                   b'"amount":{"__typename":"Money","currency":"IDR","amount":"0"}},'
                   b'{"metric":{"code":"api_calls"},"used":"2500","exceeded":false,'
                   b'"amount":{"__typename":"Money","currency":"IDR","amount":"1500"}},'
                   b'{"metric":{"code":"channels"},"used":"2","exceeded":false,"amount":null},'
                   b'{"metric":{"code":"messages"},"used":"1151","exceeded":true,'
                   b'"amount":{"__typename":"Money","currency":"IDR","amount":"526"}}]}}}')
    answers = await answers_on_both_paths(db, graphql_schema, {"query": ENTITLEMENTS}, keys.owner, test_clock=True)
    assert answers.answered and (answers.plan_statements.count, answers.generic_statements.count) == (5, 8)
    # Globex on the free tier: its limits, no amounts (no live subscription).
    other = await _same_answer(db, graphql_schema, keys.other_owner, None, sql_tier=True, query=ENTITLEMENTS)
    assert other == (b'{"data":{"entitlements":{"planSlug":"free","limits":[{"metric":{"code":"messages"},"used":"4",'
                     b'"exceeded":false,"amount":null}]}}}')
    # Both roots in one document: each reads its own basis and amounts.
    answers = await answers_on_both_paths(db, graphql_schema, {"query": BOTH}, keys.owner, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content and answers.answered
    assert b'"code":"messages"},"amount":{"formatted":"Rp 526"}' in answers.by_plan.content
    assert answers.plan_statements.count <= answers.generic_statements.count


async def test_another_currency_no_charges_and_an_amount_past_bigint(db, graphql_schema, organizations):
    keys = organizations
    initech = await make_organization(db, "Initech")
    dollars = await make_plan(db, slug="dollars", currency="USD", limits={"messages": None})
    await _charges(db, dollars.id, 1, {"messages": Charge(ChargeModel.STANDARD, 0, Decimal("0.5"))})
    await make_subscription(db, initech.id, plan=dollars, start=ANCHOR)
    await _counter(db, initech.id, "messages", "2026-04", 12345679)
    initech_id = relay.to_base64("Organization", initech.id)
    # 12,345,679 messages at half a cent: $61,728.395, rounded once: $61,728.40.
    dollar = await _same_answer(db, graphql_schema, keys.super_admin, initech_id, sql_tier=True, query=USAGE)
    assert (b'"used":"12345679","limit":null,"amount":{"amount":"61728.40","currency":"USD","formatted":"$61,728.40"}'
            in dollar)
    entitlement = await _same_answer(db, graphql_schema, keys.super_admin, initech_id, sql_tier=True, query=ENTITLEMENTS)
    assert b'"amount":{"__typename":"Money","currency":"USD","amount":"61728.40"}' in entitlement
    # A plan without charges: every amount null (its version's charges read, none found).
    flat_plan = await make_plan(db, slug="flat", limits={"messages": 5})
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.organization_id == initech.id)
                              .values(plan_id=flat_plan.id))
    flat = await _same_answer(db, graphql_schema, keys.super_admin, initech_id, sql_tier=True, query=USAGE)
    assert b'"used":"12345679","limit":"5","amount":null,"a2":null' in flat
    # An amount past what SQL's BIGINT holds: the generic path answers (Python's integers are exact).
    async with db.write() as session:
        await session.execute(update(Subscription).where(Subscription.organization_id == initech.id)
                              .values(plan_id=dollars.id))
    await _counter(db, initech.id, "api_calls", "2026-04", 9007199254740991)
    await _charges(db, dollars.id, 1, {"api_calls": Charge(ChargeModel.STANDARD, 0, Decimal(10) ** 6)})
    huge = await _same_answer(db, graphql_schema, keys.super_admin, initech_id, sql_tier=False, query=USAGE)
    assert b'"amount":{"amount":"90071992547409910000.00","currency":"USD"' in huge
    # ... and where no amount is selected, the SQL tier still answers.
    await _same_answer(db, graphql_schema, keys.super_admin, initech_id, sql_tier=True,
                       query=USAGE.replace("amount { amount currency formatted } a2: amount { formatted }", ""))
