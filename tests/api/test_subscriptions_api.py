"""The subscription API over HTTP: lifecycle on the test clock, permissions, errors, admin fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.factories import (
    database_state,
    make_addon,
    make_coupon,
    make_payment_method,
    make_plan,
    set_agents,
)
from tests.helpers import gid

QUERIES = Path(__file__).resolve().parents[2] / "queries"

PAYLOAD = "errors { code message field }"
SUB_FIELDS = "id status billingPeriod isTrial currentPeriodStart currentPeriodEnd cancelAtPeriodEnd plan { slug }"
INVOICE_FIELDS = """id invoiceNumber status subtotal { amount } tax { amount } total { amount formatted }
  amountDue { amount } taxName taxRate lines { kind amount { amount } description } payments { status amount { amount } }"""

SUBSCRIBE = f"""mutation($i: SubscribeInput!) {{ subscribe(input: $i) {{
  subscription {{ {SUB_FIELDS} }} invoice {{ {INVOICE_FIELDS} }} {PAYLOAD} }} }}"""
CHANGE = f"""mutation($i: ChangePlanInput!) {{ changePlan(input: $i) {{
  subscription {{ {SUB_FIELDS} pendingChange {{ plan {{ slug }} billingPeriod effectiveAt }} }}
  invoice {{ {INVOICE_FIELDS} }}
  preview {{ subtotal {{ amount }} tax {{ amount }} total {{ amount }} amountDue {{ amount }} creditAdded {{ amount }}
             lines {{ kind amount {{ amount }} }} taxName }}
  creditAdded {{ amount currency }} minimumRequiredCap {{ amount currency formatted }} {PAYLOAD} }} }}"""
CANCEL = f"mutation($i: CancelInput!) {{ cancel(input: $i) {{ subscription {{ {SUB_FIELDS} }} {PAYLOAD} }} }}"
RESUME = f"mutation($i: ResumeInput) {{ resume(input: $i) {{ subscription {{ {SUB_FIELDS} }} {PAYLOAD} }} }}"
ATTACH = f"""mutation($i: AttachAddonInput!) {{ attachAddon(input: $i) {{
  subscription {{ addons {{ name quantity perAgent unitPrice {{ amount }} amount {{ amount }} }} }}
  invoice {{ {INVOICE_FIELDS} }} creditAdded {{ amount }} {PAYLOAD} }} }}"""
DETACH = f"""mutation($i: DetachAddonInput!) {{ detachAddon(input: $i) {{
  subscription {{ addons {{ name }} }} invoice {{ id }} creditAdded {{ amount }} {PAYLOAD} }} }}"""
UPDATE = f"""mutation($i: UpdateSubscriptionInput!) {{ updateSubscription(input: $i) {{
  subscription {{ {SUB_FIELDS} gatewayCustomerId gatewaySubscriptionId paymentGateway }} {PAYLOAD} }} }}"""
ADVANCE = "mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }"


@pytest.fixture
async def catalog(db, keys):
    starter = await make_plan(db, name="Starter", slug="starter", monthly=299000, included_agents=5,
                              limits={"agents": 5, "messages": 10000})
    growth = await make_plan(db, name="Growth", slug="growth", monthly=599000, included_agents=5)
    trial = await make_plan(db, name="Trial", slug="trial", monthly=99000, trial_days=14, sort_order=1)
    return {"starter": starter, "growth": growth, "trial": trial}


def plan_gid(plan) -> str:
    return gid("Plan", plan.id)


async def test_lifecycle_on_the_test_clock(clock_api, keys, catalog, db):
    api = clock_api
    await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    data = await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["starter"]), "idempotencyKey": "s1"}},
                        token=keys.owner)
    payload = data["subscribe"]
    assert payload["errors"] == []
    assert payload["subscription"]["status"] == "ACTIVE"
    assert payload["subscription"]["currentPeriodEnd"] == "2026-05-01T00:00:00Z"
    assert payload["invoice"]["invoiceNumber"] == "INV-202604-000001"
    assert payload["invoice"]["total"] == {"amount": "331890", "formatted": "Rp 331,890"}
    assert payload["invoice"]["taxName"] == "PPN" and payload["invoice"]["taxRate"] == "0.12"

    moved = await api.ok(ADVANCE, {"to": "2026-04-16T00:00:00Z"}, token=keys.super_admin)
    assert moved["advanceClock"]["clock"]["now"] == "2026-04-16T00:00:00Z"

    preview = (await api.ok(CHANGE, {"i": {"planId": plan_gid(catalog["growth"]), "dryRun": True}},
                            token=keys.admin))["changePlan"]
    assert preview["invoice"] is None and preview["errors"] == []
    assert preview["preview"]["total"] == {"amount": "166500"}
    assert preview["subscription"]["plan"]["slug"] == "starter"  # nothing changed

    changed = (await api.ok(CHANGE, {"i": {"planId": plan_gid(catalog["growth"]), "idempotencyKey": "c1"}},
                            token=keys.owner))["changePlan"]
    invoice = changed["invoice"]
    # the worked example: net 150000, PPN 16500, total 166500
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]["amount"]) == (
        {"amount": "150000"}, {"amount": "16500"}, "166500")
    assert [(line["kind"], line["amount"]["amount"]) for line in invoice["lines"]] == [
        ("PRORATION_CREDIT", "-149500"), ("PRORATION_CHARGE", "299500")]
    assert invoice["status"] == "PAID" and invoice["amountDue"] == {"amount": "0"}
    assert invoice["payments"] == [{"status": "SUCCEEDED", "amount": {"amount": "166500"}}]
    assert changed["subscription"]["plan"]["slug"] == "growth"

    # replaying the same key returns the same invoice
    again = (await api.ok(CHANGE, {"i": {"planId": plan_gid(catalog["growth"]), "idempotencyKey": "c1"}},
                          token=keys.owner))["changePlan"]
    assert again["invoice"]["id"] == invoice["id"]

    scheduled = (await api.ok(CHANGE, {"i": {"planId": plan_gid(catalog["starter"]), "effective": "PERIOD_END"}},
                              token=keys.owner))["changePlan"]
    assert scheduled["subscription"]["pendingChange"] == {
        "plan": {"slug": "starter"}, "billingPeriod": "MONTHLY", "effectiveAt": "2026-05-01T00:00:00Z"}

    canceled = (await api.ok(CANCEL, {"i": {"reason": "budget"}}, token=keys.owner))["cancel"]
    assert canceled["subscription"]["cancelAtPeriodEnd"] is True and canceled["subscription"]["status"] == "ACTIVE"
    resumed = (await api.ok(RESUME, {}, token=keys.owner))["resume"]
    assert resumed["subscription"]["cancelAtPeriodEnd"] is False
    not_pending = (await api.ok(RESUME, {}, token=keys.owner))["resume"]
    assert not_pending["errors"][0]["code"] == "NOT_PENDING_CANCELLATION"

    ended = (await api.ok(CANCEL, {"i": {"immediately": True}}, token=keys.owner))["cancel"]
    assert ended["subscription"]["status"] == "CANCELED"
    assert (await api.ok("{ subscription { id } }", token=keys.member))["subscription"] is None


async def test_downgrade_returns_credit(clock_api, keys, catalog, db):
    api = clock_api
    await make_payment_method(db, keys.organization_id)
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["growth"])}}, token=keys.owner)
    await api.ok(ADVANCE, {"to": "2026-04-11T00:00:00Z"}, token=keys.super_admin)
    payload = (await api.ok(CHANGE, {"i": {"planId": plan_gid(catalog["starter"])}}, token=keys.owner))["changePlan"]
    # 20 of 30 days left: net -200000, tax back 22000: 222000 of account credit
    assert payload["invoice"] is None
    assert payload["creditAdded"] == {"amount": "222000", "currency": "IDR"}
    assert payload["preview"]["total"] == {"amount": "-222000"}
    org = await api.ok("{ viewer { organization { creditBalance { amount currency } } } }", token=keys.owner)
    assert org["viewer"]["organization"]["creditBalance"] == {"amount": "222000", "currency": "IDR"}


async def test_addons_over_the_api(clock_api, keys, catalog, db):
    api = clock_api
    await make_payment_method(db, keys.organization_id)
    ai = await make_addon(db, name="AI", monthly=20000, per_agent=True)
    await set_agents(db, keys.organization_id, 3)
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["starter"])}}, token=keys.owner)
    await api.ok(ADVANCE, {"to": "2026-04-16T00:00:00Z"}, token=keys.super_admin)
    attached = (await api.ok(ATTACH, {"i": {"addonId": gid("Addon", ai.id), "quantity": 2}}, token=keys.owner))[
        "attachAddon"]
    # 2 x 3 agents x 20000 = 120000 a month; half left: 60000 + PPN 6600
    assert attached["invoice"]["total"]["amount"] == "66600"
    assert attached["subscription"]["addons"] == [
        {"name": "AI", "quantity": 2, "perAgent": True, "unitPrice": {"amount": "20000"}, "amount": {"amount": "120000"}}]
    detached = (await api.ok(DETACH, {"i": {"addonId": gid("Addon", ai.id)}}, token=keys.owner))["detachAddon"]
    assert detached["creditAdded"] == {"amount": "66600"} and detached["subscription"]["addons"] == []
    missing = (await api.ok(DETACH, {"i": {"addonId": gid("Addon", ai.id)}}, token=keys.owner))["detachAddon"]
    assert missing["errors"][0]["code"] == "ADDON_NOT_FOUND"
    wrong_type = (await api.ok(DETACH, {"i": {"addonId": gid("Plan", ai.id)}}, token=keys.owner))["detachAddon"]
    assert wrong_type["errors"][0]["code"] == "ADDON_NOT_FOUND"


async def test_trial_subscription_page(api, keys, catalog, db):
    data = await api.ok(SUBSCRIBE, {"i": {}}, token=keys.owner)  # default: the cheapest active plan
    payload = data["subscribe"]
    assert payload["subscription"]["plan"]["slug"] == "trial"
    assert payload["subscription"]["status"] == "TRIALING" and payload["subscription"]["isTrial"] is True
    assert payload["invoice"] is None
    page = await api.ok((QUERIES / "spa" / "SubscriptionPage.graphql").read_text(), token=keys.member)
    sub = page["subscription"]
    assert sub["status"] == "TRIALING" and sub["expiredTrial"] is False and sub["trialEndDate"]
    assert sub["spendingCap"] == {"currentCap": None, "minimumRequiredCap": {"amount": "0", "currency": "IDR",
                                                                            "formatted": "Rp 0"},
                                  "requireIncrease": False, "currentAgentCount": 1}


# ---- errors over the API: each with a code, and nothing written ------------------------------

async def expect_error(api, db, query, variables, token, code, *, key="subscribe"):
    before = await database_state(db, exclude=("api_keys",))
    data = await api.ok(query, variables, token=token)
    payload = next(iter(data.values()))
    assert [e["code"] for e in payload["errors"]] == [code], payload
    assert await database_state(db, exclude=("api_keys",)) == before
    return payload


async def test_error_codes_leave_the_database_unchanged(api, keys, catalog, db):
    inactive = await make_plan(db, slug="old", active=False)
    await make_coupon(db, code="EXPIRED", valid_until=datetime(2020, 1, 1, tzinfo=UTC),
                      valid_from=datetime(2019, 1, 1, tzinfo=UTC))
    await make_coupon(db, code="USEDUP", max_uses=1, current_uses=1)
    await make_coupon(db, code="GROWTHONLY", plans=[catalog["growth"]])
    owner = keys.owner
    await expect_error(api, db, CHANGE, {"i": {"planId": plan_gid(catalog["growth"])}}, owner, "NO_SUBSCRIPTION")
    await expect_error(api, db, CANCEL, {"i": {}}, owner, "NO_SUBSCRIPTION")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": plan_gid(inactive)}}, owner, "PLAN_NOT_AVAILABLE")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": gid("Plan", keys.organization_id)}}, owner,
                       "PLAN_NOT_FOUND")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": plan_gid(catalog["starter"])}}, owner, "PAYMENT_REQUIRED")
    trial = plan_gid(catalog["trial"])
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": trial, "couponCode": "NOPE"}}, owner, "COUPON_INVALID")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": trial, "couponCode": "expired"}}, owner, "COUPON_EXPIRED")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": trial, "couponCode": "USEDUP"}}, owner, "COUPON_EXHAUSTED")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": trial, "couponCode": "GROWTHONLY"}}, owner,
                       "COUPON_NOT_APPLICABLE")
    await expect_error(api, db, SUBSCRIBE, {"i": {"organizationId": gid("Organization", keys.other_organization_id)}},
                       owner, "NOT_FOUND")
    await api.ok(SUBSCRIBE, {"i": {"planId": trial, "idempotencyKey": "k"}}, token=owner)
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": trial}}, owner, "ALREADY_SUBSCRIBED")
    await expect_error(api, db, SUBSCRIBE, {"i": {"planId": plan_gid(catalog["growth"]), "idempotencyKey": "k"}},
                       owner, "IDEMPOTENCY_KEY_REUSED")
    await expect_error(api, db, CHANGE, {"i": {"planId": trial}}, owner, "SAME_PLAN")
    await expect_error(api, db, RESUME, {}, owner, "NOT_PENDING_CANCELLATION")
    await api.ok(CANCEL, {"i": {"immediately": True}}, token=owner)
    await expect_error(api, db, CHANGE, {"i": {"planId": plan_gid(catalog["growth"])}}, owner, "SUBSCRIPTION_CANCELED")
    await expect_error(api, db, RESUME, {}, owner, "SUBSCRIPTION_CANCELED")


async def test_spending_cap_too_low_carries_the_minimum(api, keys, db):
    plan = await make_plan(db, monthly=299000, per_agent=50000, included_agents=2, trial_days=14)
    await set_agents(db, keys.organization_id, 5)
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(plan)}}, token=keys.owner)
    payload = await expect_error(api, db, CHANGE, {"i": {"spendingCap": "100000"}}, keys.owner, "SPENDING_CAP_TOO_LOW")
    assert payload["minimumRequiredCap"] == {"amount": "150000", "currency": "IDR", "formatted": "Rp 150,000"}
    ok = (await api.ok(CHANGE, {"i": {"spendingCap": "150000"}}, token=keys.owner))["changePlan"]
    assert ok["errors"] == []
    page = await api.ok("{ subscription { spendingCap { currentCap { amount } minimumRequiredCap { amount } "
                        "requireIncrease currentAgentCount } } }", token=keys.member)
    assert page["subscription"]["spendingCap"] == {"currentCap": {"amount": "150000"},
                                                   "minimumRequiredCap": {"amount": "150000"},
                                                   "requireIncrease": False, "currentAgentCount": 5}
    await set_agents(db, keys.organization_id, 6)
    page = await api.ok("{ subscription { spendingCap { requireIncrease minimumRequiredCap { amount } } } }",
                        token=keys.member)
    assert page["subscription"]["spendingCap"] == {"requireIncrease": True, "minimumRequiredCap": {"amount": "200000"}}


async def test_spending_cap_refuses_numbers(api, keys, catalog):
    result = await api.post(CHANGE, {"i": {"spendingCap": 5}}, token=keys.owner)
    assert result["errors"] and "string" in result["errors"][0]["message"]


async def test_declined_payment_is_reported_and_creates_nothing(api, keys, catalog, db):
    await make_payment_method(db, keys.organization_id, token="pm_card_declined")
    payload = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["starter"])}}, token=keys.owner))["subscribe"]
    assert [e["code"] for e in payload["errors"]] == ["PAYMENT_FAILED"]
    assert payload["subscription"] is None and payload["invoice"] is None


# ---- permissions ----------------------------------------------------------------------------

async def test_member_reads_but_may_not_change(api, keys, catalog):
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["trial"])}}, token=keys.owner)
    assert (await api.ok("{ subscription { status } }", token=keys.member))["subscription"]["status"] == "TRIALING"
    for query, variables in ((CHANGE, {"i": {}}), (CANCEL, {"i": {}}), (RESUME, {}), (SUBSCRIBE, {"i": {}})):
        result = await api.post(query, variables, token=keys.member)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    result = await api.post("{ invoices { edges { node { id } } } }", token=keys.member)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_unauthenticated_and_partner(api, keys, catalog):
    result = await api.post("{ subscription { id } }")
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    result = await api.post("{ subscription { id } }", token=keys.partner)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    result = await api.post(UPDATE, {"i": {"id": gid("Subscription", keys.organization_id), "reason": "x"}},
                            token=keys.owner)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_tenants_see_only_their_own(api, keys, catalog):
    await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["trial"])}}, token=keys.owner)
    other = await api.ok("{ subscription { id } }", token=keys.other_owner)
    assert other["subscription"] is None
    mine = await api.ok("{ subscription { id } }", token=keys.owner)
    node = await api.ok("query($id: ID!) { node(id: $id) { ... on Subscription { status } } }",
                        {"id": mine["subscription"]["id"]}, token=keys.other_owner)
    assert node["node"] is None
    node = await api.ok("query($id: ID!) { node(id: $id) { ... on Subscription { status } } }",
                        {"id": mine["subscription"]["id"]}, token=keys.member)
    assert node["node"] == {"status": "TRIALING"}
    # a tenant naming another organization reads nothing
    other_org = gid("Organization", keys.other_organization_id)
    assert (await api.ok("query($o: ID) { subscription(organizationId: $o) { id } }", {"o": other_org},
                         token=keys.owner))["subscription"] is None


# ---- super-admin ----------------------------------------------------------------------------

async def test_super_admin_reads_lists_and_patches(api, keys, catalog, db):
    org_gid = keys.organization_gid
    missing_org = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["trial"])}}, token=keys.super_admin))[
        "subscribe"]
    assert missing_org["errors"][0] == {"code": "VALIDATION", "field": "organizationId",
                                        "message": "Super-admins name the organization: pass organizationId."}
    created = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["trial"]), "organizationId": org_gid}},
                            token=keys.super_admin))["subscribe"]
    sub_id = created["subscription"]["id"]
    other = (await api.ok(SUBSCRIBE, {"i": {"planId": plan_gid(catalog["trial"]),
                                            "organizationId": gid("Organization", keys.other_organization_id)}},
                          token=keys.super_admin))["subscribe"]
    assert other["errors"] == []
    read = await api.ok("query($o: ID) { subscription(organizationId: $o) { id } }", {"o": org_gid},
                        token=keys.super_admin)
    assert read["subscription"]["id"] == sub_id
    listing = (QUERIES / "admin" / "Subscriptions.graphql").read_text()
    everything = await api.ok(listing, token=keys.super_admin)
    assert len(everything["subscriptions"]["edges"]) == 2
    assert everything["subscriptions"]["edges"][0]["node"]["organization"]["externalId"] in {"acme", "globex"}
    by_plan = await api.ok(listing, {"planId": plan_gid(catalog["growth"])}, token=keys.super_admin)
    assert by_plan["subscriptions"]["edges"] == []
    trialing = await api.ok(listing, {"status": "TRIALING", "first": 1}, token=keys.super_admin)
    assert len(trialing["subscriptions"]["edges"]) == 1 and trialing["subscriptions"]["pageInfo"]["hasNextPage"]
    patched = (await api.ok(UPDATE, {"i": {"id": sub_id, "status": "CANCELED", "reason": "fraud",
                                           "gatewayCustomerId": "cus_9"}}, token=keys.super_admin))["updateSubscription"]
    assert patched["errors"] == []
    assert (patched["subscription"]["status"], patched["subscription"]["gatewayCustomerId"]) == ("CANCELED", "cus_9")
    bad = (await api.ok(UPDATE, {"i": {"id": other["subscription"]["id"], "status": "ACTIVE"}},
                        token=keys.super_admin))["updateSubscription"]
    assert bad["errors"][0]["code"] == "VALIDATION"
    forbidden = (await api.ok(UPDATE, {"i": {"id": other["subscription"]["id"], "status": "UNPAID", "reason": "x"}},
                              token=keys.super_admin))["updateSubscription"]
    assert forbidden["errors"][0]["code"] == "INVALID_TRANSITION"
    assert (await api.post(listing, token=keys.owner))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
