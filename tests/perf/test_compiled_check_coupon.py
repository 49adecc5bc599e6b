"""``coupon`` (a tenant's coupon check) on the SQL tier (``graphql.catalog.types``' ``coupon_check_row`` and its forms):
the same bytes as graphql-core over the service's ``check_coupon`` on both databases, for every answer its rules give
(an unknown or malformed code, an inactive coupon, one not yet valid, expired, used up, limited to other plans, FIXED in
another currency, an unknown plan, an inactive plan asked about by a tenant and by a super-admin, a usable coupon),
and never more statements: the first read (``check_coupon_basis``) and, when the coupon is shown, one statement that
writes it; a code refused without its coupon is answered after the first read alone (``columns.PythonAnswer``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from strawberry import relay

from billing_graphql.db.models import TestClock
from tests.factories import make_coupon, make_plan
from tests.helpers import make_keys
from tests.perf.test_compiled_selections import answers_on_both_paths

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30, microseconds=120000)

CHECK = """query C($code: String!, $planId: ID) { coupon(code: $code, planId: $planId) {
  __typename code valid reason message v2: valid
  coupon { __typename code name discountType discountValue percentOff amountOff { amount currency formatted }
           duration durationInMonths validUntil }
  again: coupon { code }
} }"""


@pytest.fixture
async def catalog(db):
    """The keys, the test clock at NOW, plans in IDR (one inactive) and in USD, and a coupon for each rule."""
    keys = await make_keys(db)
    async with db.write() as session:
        session.add(TestClock(id=1, now=NOW))
    plans = {"idr": await make_plan(db, slug="growth"), "usd": await make_plan(db, slug="dollar", currency="USD"),
             "retired": await make_plan(db, slug="retired", active=False)}
    await make_coupon(db, code="WELCOME", percent_off=20, valid_until=UNTIL)
    await make_coupon(db, code="HIDDEN", active=False)
    await make_coupon(db, code="SOON", valid_from=NOW + timedelta(seconds=1))
    await make_coupon(db, code="OLD", valid_until=NOW)
    await make_coupon(db, code="GONE", max_uses=3, current_uses=3)
    await make_coupon(db, code="PROONLY", plans=[plans["usd"]])
    await make_coupon(db, code="DOLLARS", percent_off=None, amount_off=1050, currency="USD")
    # FIXED in rupiah, limited to a plan priced in dollars: applicable nowhere in the catalog.
    await make_coupon(db, code="ELSEWHERE", percent_off=None, amount_off=50000, currency="IDR", plans=[plans["usd"]])
    return keys, {name: relay.to_base64("Plan", plan.id) for name, plan in plans.items()}


async def _check(db, graphql_schema, token: str, code: str, plan: str | None = None) -> dict:
    """The check's answer, the same bytes on both paths, with no more statements on the compiled one."""
    answers = await answers_on_both_paths(db, graphql_schema, {"query": CHECK, "variables": {"code": code,
                                                                                            "planId": plan}},
                                          token, test_clock=True)
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert answers.plan_statements.count <= answers.generic_statements.count, answers.plan_statements.statements
    answer = json.loads(answers.by_plan.content)
    if "errors" not in answer:
        assert answers.answered, answers.by_plan.content  # not handed to graphql-core
    return answer


async def test_every_answer_is_the_same_on_both_paths(db, graphql_schema, catalog):
    keys, plans = catalog
    welcome = (await _check(db, graphql_schema, keys.owner, "WELCOME", plans["idr"]))["data"]["coupon"]
    assert welcome == {
        "__typename": "CouponCheck", "code": "WELCOME", "valid": True, "reason": None,
        "message": "This coupon can be used.", "v2": True,
        "coupon": {"__typename": "CouponSummary", "code": "WELCOME", "name": "test coupon", "discountType": "PERCENTAGE",
                   "discountValue": "20", "percentOff": 20, "amountOff": None, "duration": "ONCE",
                   "durationInMonths": None, "validUntil": "2026-06-09T12:00:00.120000Z"},
        "again": {"code": "WELCOME"}}
    # Typed in lower case, padded: matched upper-case; without a plan, usable.
    assert (await _check(db, graphql_schema, keys.member, "  welcome ", None))["data"]["coupon"]["coupon"] == \
        welcome["coupon"]
    refused = {  # code -> (reason, coupon shown)
        "nope": ("COUPON_INVALID", False), "HIDDEN": ("COUPON_INVALID", False), "soon": ("COUPON_INVALID", False),
        "OLD": ("COUPON_EXPIRED", False), "GONE": ("COUPON_EXHAUSTED", False),
        "PROONLY": ("COUPON_NOT_APPLICABLE", True), "DOLLARS": ("COUPON_NOT_APPLICABLE", True),
        "ELSEWHERE": ("COUPON_NOT_APPLICABLE", True),
    }
    for code, (reason, shown) in refused.items():
        for plan in (plans["idr"], None):
            answer = (await _check(db, graphql_schema, keys.owner, code, plan))["data"]["coupon"]
            if plan is None and reason == "COUPON_NOT_APPLICABLE":  # no plan asked about: usable
                assert answer["valid"] and answer["reason"] is None, (code, answer)
                continue
            assert (answer["code"], answer["valid"], answer["reason"]) == (code.upper(), False, reason), answer
            assert (answer["coupon"] is not None) == shown, (code, answer)
    dollars = (await _check(db, graphql_schema, keys.owner, "DOLLARS", plans["usd"]))["data"]["coupon"]
    assert dollars["valid"] and dollars["coupon"]["amountOff"] == {"amount": "10.50", "currency": "USD",
                                                                   "formatted": "$10.50"}
    assert dollars["coupon"]["discountValue"] == "10.50" and dollars["coupon"]["percentOff"] is None
    elsewhere = (await _check(db, graphql_schema, keys.owner, "ELSEWHERE", plans["usd"]))["data"]["coupon"]
    assert (elsewhere["reason"], elsewhere["message"]) == ("COUPON_NOT_APPLICABLE",
                                                           "This coupon does not apply to this plan.")
    assert elsewhere["coupon"]["amountOff"] == {"amount": "50000", "currency": "IDR", "formatted": "Rp 50,000"}


async def test_plans_asked_about(db, graphql_schema, catalog):
    keys, plans = catalog
    unknown = relay.to_base64("Plan", uuid.UUID(int=7))
    for token in (keys.owner, keys.super_admin):
        answer = (await _check(db, graphql_schema, token, "WELCOME", unknown))["data"]["coupon"]
        assert (answer["reason"], answer["message"], answer["coupon"]["code"]) == ("PLAN_NOT_FOUND", "Plan not found.",
                                                                                  "WELCOME")
    # An inactive plan is no plan to a tenant; a super-admin sees it.
    tenant = (await _check(db, graphql_schema, keys.owner, "WELCOME", plans["retired"]))["data"]["coupon"]
    assert tenant["reason"] == "PLAN_NOT_FOUND" and tenant["coupon"] is not None
    staff = (await _check(db, graphql_schema, keys.super_admin, "WELCOME", plans["retired"]))["data"]["coupon"]
    assert staff["valid"] and staff["reason"] is None
    # A malformed id: the same error on both paths (the query function's error hands the request to graphql-core).
    answer = await _check(db, graphql_schema, keys.owner, "WELCOME", "not-an-id")
    assert answer["data"] == {"coupon": None}
    assert answer["errors"][0]["message"] == "'planId' is not a well-formed global ID."
    # The id of another type is no plan's.
    other = await _check(db, graphql_schema, keys.owner, "WELCOME", relay.to_base64("Organization", uuid.UUID(int=7)))
    assert other["data"]["coupon"]["reason"] == "PLAN_NOT_FOUND"


async def test_malformed_codes_are_refused_without_a_read(db, graphql_schema, catalog):
    keys, plans = catalog
    for code, matched in (("no way!", "NO WAY!"), ("", ""), ("  é  ", "É"), (" -welcome", "-WELCOME")):
        answer = (await _check(db, graphql_schema, keys.owner, code, plans["idr"]))["data"]["coupon"]
        assert answer == {"__typename": "CouponCheck", "code": matched, "valid": False, "reason": "COUPON_INVALID",
                          "message": "This coupon code is not valid.", "v2": False, "coupon": None, "again": None}
    # A control character is refused before the field is resolved: the same error on both paths.
    refused = await _check(db, graphql_schema, keys.owner, "WEL\x00COME", plans["idr"])
    assert refused["data"] is None and refused["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "code"}


async def test_statements(db, graphql_schema, catalog):
    """A usable coupon: the first read and the statement that writes it, where the service sends three reads; a code
    refused without its coupon: the first read alone; a malformed code: none (the clock and the key besides)."""
    keys, plans = catalog
    for code, plan, compiled, generic in (("WELCOME", plans["idr"], 4, 5), ("WELCOME", None, 4, 4),
                                          ("OLD", plans["idr"], 3, 5), ("nope", plans["idr"], 3, 4),
                                          ("nope", None, 3, 3), ("no way!", plans["idr"], 2, 2)):
        answers = await answers_on_both_paths(db, graphql_schema, {"query": CHECK, "variables": {
            "code": code, "planId": plan}}, keys.owner, test_clock=True)
        assert answers.by_plan.content == answers.by_graphql_core.content
        assert (answers.plan_statements.count, answers.generic_statements.count) == (compiled, generic), (
            code, plan, answers.plan_statements.statements)
