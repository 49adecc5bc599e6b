"""Where one feature hands a customer to the next (issue 18): checkout keeps its card, a declined
first payment creates nothing, the default plan follows the organization's currency, input that
used to be accepted silently, and the seed fields that were missing. Over HTTP only."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import select
from strawberry import relay

from billing_graphql.db.models import (
    AuditEvent,
    IdempotencyRecord,
    Invoice,
    Organization,
    OutboxEvent,
    Payment,
    PaymentMethod,
    Plan,
    PlanFeature,
    Subscription,
    SubscriptionAddon,
)
from billing_graphql.gateways.sandbox import sign_payment
from tests.factories import count_rows, database_state, make_addon, make_invoice, make_payment_method, make_plan
from tests.helpers import GraphQLClient, gid


def decode_gid(value: str) -> uuid.UUID:
    return uuid.UUID(relay.from_base64(value)[1])

ERRORS = "errors { code message field }"
SUBSCRIBE = f"""mutation($i: SubscribeInput!) {{ subscribe(input: $i) {{
  subscription {{ id status plan {{ slug }} }} invoice {{ id status }} {ERRORS} }} }}"""


async def event_types(db) -> list[str]:
    async with db.read() as session:
        return list((await session.scalars(select(OutboxEvent.event_type))).all())


# ---- 7. a declined first payment creates nothing ----------------------------------------------

async def test_a_declined_first_payment_creates_no_subscription(api, db, keys):
    plan = await make_plan(db, slug="starter", monthly=299000, trial_days=0)
    declined = await make_payment_method(db, keys.organization_id, token="pm_card_declined")
    events_before = await event_types(db)
    variables = {"i": {"planId": gid("Plan", plan.id), "idempotencyKey": "first-try"}}

    payload = (await api.ok(SUBSCRIBE, variables, token=keys.owner))["subscribe"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("PAYMENT_FAILED", "paymentMethodId")]
    assert "card_declined" in payload["errors"][0]["message"]
    assert payload["subscription"] is None and payload["invoice"] is None
    assert (await count_rows(db, Subscription), await count_rows(db, Invoice), await count_rows(db, Payment)) == (
        0, 0, 0)
    assert await event_types(db) == events_before  # no subscription.created, no invoice events
    async with db.read() as session:
        [audit] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "subscription.payment_failed"))).all()
    assert audit.after["failure_code"] == "card_declined" and audit.after["plan_id"] == str(plan.id)
    assert audit.after["payment_method_id"] == str(declined.id)

    # The same key replays the same error and writes nothing more.
    state = await database_state(db)
    again = (await api.ok(SUBSCRIBE, variables, token=keys.owner))["subscribe"]
    assert again["errors"] == payload["errors"]
    assert await database_state(db) == state

    # Nothing stands in the way of the next try: a new card and a new key succeed.
    visa = await make_payment_method(db, keys.organization_id, token="pm_card_visa", is_default=False)
    ok = (await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id), "idempotencyKey": "second-try",
                                         "paymentMethodId": gid("PaymentMethod", visa.id)}},
                       token=keys.owner))["subscribe"]
    assert ok["errors"] == [] and ok["subscription"]["status"] == "ACTIVE" and ok["invoice"]["status"] == "PAID"
    assert await count_rows(db, IdempotencyRecord) == 2


# ---- 1. checkout keeps the payment method that paid it -----------------------------------------

START = f"""mutation($i: StartCheckoutInput!) {{ startCheckout(input: $i) {{ orderId {ERRORS} }} }}"""
CONFIRM = f"""mutation($i: ConfirmCheckoutInput!) {{ confirmCheckout(input: $i) {{
  subscription {{ status currentPeriodEnd }} payment {{ status }} {ERRORS} }} }}"""
CHANGE = f"""mutation($i: ChangePlanInput!) {{ changePlan(input: $i) {{
  invoice {{ status total {{ amount }} payments {{ status amount {{ amount }} }} }} {ERRORS} }} }}"""
METHODS = "{ paymentMethods { id gateway type label isDefault } }"
ADVANCE = "mutation($to: DateTime!) { advanceClock(input: {to: $to}) { clock { now } errors { code } } }"
INVOICES = "{ invoices(first: 10) { edges { node { billingReason status periodStart payments { status } } } } }"


async def checkout(api, keys, plan, payment_id: str) -> dict:
    started = (await api.ok(START, {"i": {"planId": gid("Plan", plan.id)}}, token=keys.owner))["startCheckout"]
    assert started["errors"] == []
    order_id = started["orderId"]
    confirm = {"i": {"orderId": order_id, "paymentId": payment_id, "signature": sign_payment(order_id, payment_id)}}
    confirmed = (await api.ok(CONFIRM, confirm, token=keys.owner))["confirmCheckout"]
    assert confirmed["errors"] == [] and confirmed["payment"]["status"] == "SUCCEEDED"
    return confirmed


async def test_checkout_keeps_the_card_for_the_upgrade_and_the_renewal(clock_api, db, keys):
    api = clock_api
    starter = await make_plan(db, slug="starter", monthly=299000, trial_days=0)
    growth = await make_plan(db, slug="growth", monthly=599000, trial_days=0)
    confirmed = await checkout(api, keys, starter, "pay_sandbox_1")
    assert confirmed["subscription"]["status"] == "ACTIVE"

    [method] = (await api.ok(METHODS, token=keys.owner))["paymentMethods"]
    assert (method["gateway"], method["type"], method["isDefault"]) == ("sandbox", "CREDIT_CARD", True)
    async with db.read() as session:
        token = (await session.get(PaymentMethod, decode_gid(method["id"]))).gateway_payment_method_id
    assert token == "pay_sandbox_1"  # the sandbox's token of a checkout payment is its payment id

    # The upgrade right after is charged to it: half of April left, net 150,000 + PPN = 166,500.
    await api.ok(ADVANCE, {"to": "2026-04-16T00:00:00Z"}, token=keys.super_admin)
    changed = (await api.ok(CHANGE, {"i": {"planId": gid("Plan", growth.id)}}, token=keys.owner))["changePlan"]
    assert changed["errors"] == []
    assert changed["invoice"]["status"] == "PAID"
    assert changed["invoice"]["payments"] == [{"status": "SUCCEEDED", "amount": {"amount": "166500"}}]

    # The first renewal is charged to it too.
    assert (await api.ok(ADVANCE, {"to": "2026-05-01T00:00:01Z"}, token=keys.super_admin))["advanceClock"][
        "errors"] == []
    invoices = [edge["node"] for edge in (await api.ok(INVOICES, token=keys.owner))["invoices"]["edges"]]
    [renewal] = [node for node in invoices if node["billingReason"] == "SUBSCRIPTION_CYCLE"]
    assert renewal["status"] == "PAID" and renewal["payments"] == [{"status": "SUCCEEDED"}]
    assert (await api.ok("{ subscription { status } }", token=keys.owner))["subscription"]["status"] == "ACTIVE"


async def test_checkout_does_not_replace_an_existing_default(api, db, keys):
    plan = await make_plan(db, monthly=299000, trial_days=0)
    visa = await make_payment_method(db, keys.organization_id, token="pm_card_visa")
    await checkout(api, keys, plan, "pay_sandbox_2")
    methods = (await api.ok(METHODS, token=keys.owner))["paymentMethods"]
    assert [(m["id"], m["isDefault"]) for m in methods][0] == (gid("PaymentMethod", visa.id), True)
    assert [m["isDefault"] for m in methods] == [True, False]


# ---- 6. the default plan follows the organization's currency -----------------------------------

CREATE_ORG = f"""mutation($i: CreateOrganizationInput!) {{ createOrganization(input: $i) {{
  organization {{ id currency }} {ERRORS} }} }}"""
UPDATE_ORG = f"""mutation($i: UpdateOrganizationInput!) {{ updateOrganization(input: $i) {{
  organization {{ id name currency }} {ERRORS} }} }}"""


async def organizations_and_audit(db) -> tuple:
    """What a refused organization change must leave as it was (API keys' last use moves on)."""
    async with db.read() as session:
        rows = (await session.execute(select(Organization.id, Organization.name, Organization.currency,
                                             Organization.updated_at).order_by(Organization.id))).all()
    return rows, await count_rows(db, AuditEvent), await count_rows(db, OutboxEvent)


async def test_organizations_have_a_currency_default_idr(api, db, keys):
    created = (await api.ok(CREATE_ORG, {"i": {"name": "Tokyo", "externalId": "tokyo"}},
                            token=keys.super_admin))["createOrganization"]
    assert created["errors"] == [] and created["organization"]["currency"] == "IDR"
    usd = (await api.ok(CREATE_ORG, {"i": {"name": "NY", "externalId": "ny", "currency": "usd"}},
                        token=keys.super_admin))["createOrganization"]
    assert usd["organization"]["currency"] == "USD"
    state = await organizations_and_audit(db)
    bad = (await api.ok(CREATE_ORG, {"i": {"name": "X", "externalId": "x", "currency": "XYZ"}},
                        token=keys.super_admin))["createOrganization"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("VALIDATION", "currency")]
    assert await organizations_and_audit(db) == state


async def test_the_default_plan_is_the_cheapest_in_the_organizations_currency(api, db, keys):
    await make_plan(db, slug="usd-free", currency="USD", monthly=0, trial_days=0)
    await make_plan(db, slug="idr-pro", currency="IDR", monthly=599000, trial_days=14)
    await make_plan(db, slug="idr-basic", currency="IDR", monthly=99000, trial_days=14, sort_order=2)
    await make_plan(db, slug="idr-basic-b", currency="IDR", monthly=99000, trial_days=14, sort_order=1)
    limits = (await api.ok("{ planLimits { plans { slug } } }", token=keys.owner))["planLimits"]
    assert sorted(plan["slug"] for plan in limits["plans"]) == ["idr-basic", "idr-basic-b", "idr-pro"]
    payload = (await api.ok(SUBSCRIBE, {"i": {}}, token=keys.owner))["subscribe"]
    assert payload["errors"] == [] and payload["subscription"]["plan"]["slug"] == "idr-basic-b"

    # A super-admin may change the currency only while there is no live subscription.
    org = gid("Organization", keys.organization_id)
    state = await organizations_and_audit(db)
    refused = (await api.ok(UPDATE_ORG, {"i": {"id": org, "currency": "USD"}},
                            token=keys.super_admin))["updateOrganization"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("VALIDATION", "currency")]
    assert await organizations_and_audit(db) == state
    other = gid("Organization", keys.other_organization_id)
    changed = (await api.ok(UPDATE_ORG, {"i": {"id": other, "currency": "USD"}},
                            token=keys.super_admin))["updateOrganization"]
    assert changed["errors"] == [] and changed["organization"]["currency"] == "USD"
    usd = (await api.ok(SUBSCRIBE, {"i": {}}, token=keys.other_owner))["subscribe"]
    assert usd["errors"] == [] and usd["subscription"]["plan"]["slug"] == "usd-free"
    unknown = (await api.ok(UPDATE_ORG, {"i": {"id": other, "currency": "ABC"}},
                            token=keys.super_admin))["updateOrganization"]
    assert [(e["code"], e["field"]) for e in unknown["errors"]] == [("VALIDATION", "currency")]
    forbidden = await api.post(UPDATE_ORG, {"i": {"id": other, "currency": "IDR"}}, token=keys.owner)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# ---- 11. input that used to be accepted silently ---------------------------------------------

CREATE_PLAN = f"""mutation($i: CreatePlanInput!) {{ createPlan(input: $i) {{ plan {{ id }} {ERRORS} }} }}"""
UPDATE_SUB = f"""mutation($i: UpdateSubscriptionInput!) {{ updateSubscription(input: $i) {{
  subscription {{ paymentGateway }} {ERRORS} }} }}"""


async def test_an_unknown_feature_key_is_refused(api, db, keys):
    plan = {"name": "Scale", "slug": "scale", "basePriceMonthly": "100000",
            "features": [{"key": "aiAgent", "enabled": True}, {"key": "ai_agent", "enabled": True}]}
    state = await count_rows(db, Plan), await count_rows(db, PlanFeature), await count_rows(db, AuditEvent)
    result = (await api.ok(CREATE_PLAN, {"i": plan}, token=keys.super_admin))["createPlan"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", "features[1].key")]
    assert "aiAgent" in result["errors"][0]["message"]  # the message lists the known keys
    assert (await count_rows(db, Plan), await count_rows(db, PlanFeature), await count_rows(db, AuditEvent)) == state
    plan["features"] = [{"key": "aiAgent", "enabled": True}, {"key": "dedicatedSupport", "enabled": False}]
    assert (await api.ok(CREATE_PLAN, {"i": plan}, token=keys.super_admin))["createPlan"]["errors"] == []


async def test_razorpay_needs_its_keys_before_a_subscription_is_moved_to_it(api, db, keys):
    plan = await make_plan(db, trial_days=14)
    subscribed = (await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}}, token=keys.owner))["subscribe"]
    variables = {"i": {"id": subscribed["subscription"]["id"], "paymentGateway": "razorpay"}}
    before = await organizations_and_audit(db)
    result = (await api.ok(UPDATE_SUB, variables, token=keys.super_admin))["updateSubscription"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("VALIDATION", "paymentGateway")]
    assert await organizations_and_audit(db) == before
    async with db.read() as session:
        assert (await session.scalar(select(Subscription.payment_gateway))) == "sandbox"


# ---- 12. seed fields that were missing -------------------------------------------------------

async def test_a_payment_method_names_its_organization(api, db, keys):
    await make_payment_method(db, keys.organization_id)
    query = "{ paymentMethods { organization { id externalId } } }"
    [method] = (await api.ok(query, token=keys.owner))["paymentMethods"]
    assert method["organization"] == {"id": gid("Organization", keys.organization_id), "externalId": "acme"}


async def test_an_attached_addon_has_its_own_id(api, db, keys):
    await make_payment_method(db, keys.organization_id)
    plan = await make_plan(db, monthly=299000, trial_days=14)
    addon = await make_addon(db, name="AI", monthly=20000)
    await api.ok(SUBSCRIBE, {"i": {"planId": gid("Plan", plan.id)}}, token=keys.owner)
    attach = f"""mutation($i: AttachAddonInput!) {{ attachAddon(input: $i) {{
      subscriptionAddon {{ id addonId quantity }} subscription {{ addons {{ id addonId }} }} {ERRORS} }} }}"""
    payload = (await api.ok(attach, {"i": {"addonId": gid("Addon", addon.id), "quantity": 2}},
                            token=keys.owner))["attachAddon"]
    assert payload["errors"] == []
    async with db.read() as session:
        attached_id = await session.scalar(select(SubscriptionAddon.id))
    assert payload["subscriptionAddon"] == {"id": gid("SubscriptionAddon", attached_id),
                                            "addonId": gid("Addon", addon.id), "quantity": 2}
    assert payload["subscription"]["addons"] == [{"id": gid("SubscriptionAddon", attached_id),
                                                  "addonId": gid("Addon", addon.id)}]


async def test_a_portal_session_without_return_url_goes_back_to_the_public_url(db, settings, keys):
    import httpx
    import jwt

    from billing_graphql.app import create_app
    from billing_graphql.services.portal.sessions import AUDIENCE

    secret = "portal-secret-for-tests-0123456789"
    app = create_app(replace(settings, portal_secret=secret, public_url="https://billing.example"), db=db,
                     freeze_gc=False)
    portal = f"mutation($i: CreateBillingPortalSessionInput) {{ createBillingPortalSession(input: $i) {{ url {ERRORS} }} }}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for variables in ({}, {"i": {}}):
            created = (await GraphQLClient(client, db).ok(portal, variables, token=keys.owner))[
                "createBillingPortalSession"]
            assert created["errors"] == []
            token = created["url"].rsplit("/", 1)[1]
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE)
            assert claims["ret"] == "https://billing.example"


async def test_the_invoice_pdf_is_also_served_at_the_seed_path(api, db, keys):
    invoice = await make_invoice(db, keys.organization_id, number="INV-202601-000042")
    theirs = await make_invoice(db, keys.other_organization_id, number="INV-202601-000043")
    owner = {"authorization": f"Bearer {keys.owner}"}
    seed = await api.client.get(f"/invoices/{invoice.id}/pdf", headers=owner)
    dotted = await api.client.get(f"/invoices/{invoice.id}.pdf", headers=owner)
    assert seed.status_code == 200 and seed.headers["content-type"] == "application/pdf"
    assert seed.headers["content-disposition"] == dotted.headers["content-disposition"]
    assert (await api.client.get(f"/invoices/{theirs.id}/pdf", headers=owner)).status_code == 404
    assert (await api.client.get(f"/invoices/{invoice.id}/pdf")).status_code == 401
    assert (await api.client.get(f"/invoices/{invoice.id}.pdf/pdf", headers=owner)).status_code == 404
