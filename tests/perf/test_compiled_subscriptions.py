"""The staff list of subscriptions on the SQL tier, coupons and pending changes included (issue 24): every field of
``AppliedCoupon`` and ``PendingChange`` answers the same bytes on both paths, on both databases, in one
statement beside the key's."""

from __future__ import annotations

import json

from billing_graphql.domain.roles import Role
from billing_graphql.graphql.persisted import QUERIES_DIR
from tests.perf.test_compiled_selections import _seed, answers_on_both_paths

EVERY_FIELD = """
query Every($status: SubscriptionStatus) {
  subscriptions(status: $status, first: 10) {
    edges { node {
      id status billingPeriod
      coupon { __typename code name discountType discountValue percentOff amountOff { amount currency formatted }
               duration durationInMonths periodsRemaining }
      pendingChange { __typename plan { id name slug currency } billingPeriod effectiveAt }
      again: coupon { periodsRemaining }
    } }
  }
}"""
REGISTERED = (QUERIES_DIR / "admin" / "Subscriptions.graphql").read_text()


async def test_coupons_and_pending_changes_answer_the_same_in_one_statement(db, settings, graphql_schema):
    keys, _ = await _seed(db, settings)
    for document in (EVERY_FIELD, REGISTERED):
        await _check(db, graphql_schema, document, keys[Role.SUPER_ADMIN])


async def _check(db, graphql_schema, document: str, token: str) -> None:
    answers = await answers_on_both_paths(db, graphql_schema, {"query": document, "variables": {}}, token,
                                          cold_credentials=False)
    assert answers.by_plan.status_code == answers.by_graphql_core.status_code == 200
    assert answers.by_plan.content == answers.by_graphql_core.content
    assert answers.answered and answers.plan_statements.count == 1, answers.plan_statements.statements
    nodes = [edge["node"] for edge in json.loads(answers.by_plan.content)["data"]["subscriptions"]["edges"]]
    coupons = {node["coupon"]["code"]: node for node in nodes if node["coupon"] is not None}
    assert {"TENOFF", "HALF"} <= set(coupons)  # and the demo organization's own
    fixed, forever = coupons["TENOFF"], coupons["HALF"]
    assert fixed["coupon"]["periodsRemaining"] == 2 and forever["coupon"]["periodsRemaining"] is None
    assert fixed["pendingChange"]["billingPeriod"] == forever["pendingChange"]["billingPeriod"] == "ANNUAL"
    assert fixed["pendingChange"]["plan"]["name"] == "Dollar"
    if document is EVERY_FIELD:
        assert fixed["coupon"]["percentOff"] is None and fixed["coupon"]["durationInMonths"] == 3
        assert fixed["coupon"]["amountOff"] == {"amount": "10.50", "currency": "USD", "formatted": "$10.50"}
        assert forever["coupon"]["percentOff"] == 50 and forever["coupon"]["amountOff"] is None
        assert forever["coupon"]["durationInMonths"] is None and forever["coupon"]["discountValue"] == "50"
        assert fixed["coupon"]["discountValue"] == "10.50" and fixed["again"] == {"periodsRemaining": 2}
    assert any(node["pendingChange"] is None for node in nodes)  # the demo's: nothing pending
