"""The role table, tested from this one place: every root field, every role, FORBIDDEN or not.

README's operation table says the same (DESIGN.md section 4): MEMBER reads the subscription,
plans and usage but not invoices or payment methods; OWNER and ADMIN run the organization's
billing; API keys are the owners' (ADMIN manages billing, not credentials); the catalog,
organizations, refunds, analytics and the clock are super-admins'; partners read their usage
snapshots and nothing else. A new root field must be added here.
"""

from __future__ import annotations

import pytest
from graphql import build_schema

from tests.api.test_schema_file import SCHEMA_FILE

SA, OWNER, ADMIN, MEMBER, PARTNER = "super_admin", "owner", "admin", "member", "partner"
ROLES = (SA, OWNER, ADMIN, MEMBER, PARTNER)
READERS = frozenset({SA, OWNER, ADMIN, MEMBER})
MANAGERS = frozenset({SA, OWNER, ADMIN})
TENANT_MANAGERS = frozenset({OWNER, ADMIN})
OWNERS = frozenset({SA, OWNER})
STAFF = frozenset({SA})

ID = '"UGxhbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA="'  # a Plan id that matches nothing

# root field -> (document, roles allowed)
ROLE_TABLE: dict[str, tuple[str, frozenset[str]]] = {
    "viewer": ("{ viewer { role } }", READERS),
    "plans": ("{ plans { id } }", READERS),
    "plan": ('{ plan(slug: "none") { id } }', READERS),
    "metrics": ("{ metrics { code } }", READERS),
    "clock": ("{ clock { now } }", READERS),
    "node": (f"{{ node(id: {ID}) {{ id }} }}", READERS),
    "addons": ("{ addons { id } }", READERS),
    "coupon": ('{ coupon(code: "NONE") { valid } }', READERS),
    "subscription": ("{ subscription { id } }", READERS),
    "invoices": ("{ invoices { edges { node { id } } } }", MANAGERS),
    "invoice": (f"{{ invoice(id: {ID}) {{ id }} }}", MANAGERS),
    "paymentMethods": ("{ paymentMethods { id } }", TENANT_MANAGERS),
    "apiKeys": ("{ apiKeys { id } }", OWNERS),
    "organizations": ("{ organizations { edges { node { id } } } }", STAFF),
    "organization": (f"{{ organization(id: {ID}) {{ id }} }}", STAFF),
    "subscriptions": ("{ subscriptions { edges { node { id } } } }", STAFF),
    "coupons": ("{ coupons { edges { node { id } } } }", STAFF),
    # mutations: inputs that fail as business errors, so an allowed role gets a payload
    "subscribe": (f"mutation {{ subscribe(input: {{planId: {ID}}}) {{ errors {{ code }} }} }}", MANAGERS),
    "changePlan": ("mutation { changePlan(input: {dryRun: true}) { errors { code } } }", MANAGERS),
    "cancel": ("mutation { cancel(input: {}) { errors { code } } }", MANAGERS),
    "resume": ("mutation { resume { errors { code } } }", MANAGERS),
    "attachAddon": (f"mutation {{ attachAddon(input: {{addonId: {ID}}}) {{ errors {{ code }} }} }}", MANAGERS),
    "detachAddon": (f"mutation {{ detachAddon(input: {{addonId: {ID}}}) {{ errors {{ code }} }} }}", MANAGERS),
    "startCheckout": ("mutation { startCheckout(input: {}) { errors { code } } }", MANAGERS),
    "confirmCheckout": ('mutation { confirmCheckout(input: {orderId: "o", paymentId: "p", signature: "s"}) '
                        "{ errors { code } } }", MANAGERS),
    "payInvoice": (f"mutation {{ payInvoice(input: {{invoiceId: {ID}}}) {{ errors {{ code }} }} }}", MANAGERS),
    "addPaymentMethod": ('mutation { addPaymentMethod(input: {gateway: "nope", gatewayPaymentMethodId: "pm_card_visa", '
                         'type: CREDIT_CARD}) { errors { code } } }', TENANT_MANAGERS),
    "setDefaultPaymentMethod": (f"mutation {{ setDefaultPaymentMethod(input: {{id: {ID}}}) {{ errors {{ code }} }} }}",
                                TENANT_MANAGERS),
    "removePaymentMethod": (f"mutation {{ removePaymentMethod(input: {{id: {ID}}}) {{ errors {{ code }} }} }}",
                            TENANT_MANAGERS),
    "updateOrganization": (f"mutation {{ updateOrganization(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "createSetupIntent": ('mutation { createSetupIntent(input: {gateway: "stripe"}) { errors { code } } }',
                          TENANT_MANAGERS),
    "revokeBillingPortalSessions": (f"mutation {{ revokeBillingPortalSessions(input: {{organizationId: {ID}}}) "
                                    "{ errors { code } } }", MANAGERS),
    "applyCoupon": ('mutation { applyCoupon(input: {couponCode: ""}) { errors { code } } }', MANAGERS),
    "createBillingPortalSession": ('mutation { createBillingPortalSession(input: {returnUrl: "ftp://x"}) '
                                   "{ errors { code } } }", TENANT_MANAGERS),
    "updateBillingDetails": ('mutation { updateBillingDetails(input: {country: "??"}) { errors { code } } }',
                             OWNERS),
    "createApiKey": ('mutation { createApiKey(input: {role: SUPER_ADMIN, organizationId: ' + ID + '}) '
                     "{ errors { code } } }", OWNERS),
    "revokeApiKey": (f"mutation {{ revokeApiKey(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", OWNERS),
    "createOrganization": ('mutation { createOrganization(input: {name: "", externalId: ""}) { errors { code } } }',
                           STAFF),
    "createPlan": ('mutation { createPlan(input: {name: "", slug: "", basePriceMonthly: "-1"}) { errors { code } } }',
                   STAFF),
    "updatePlan": (f"mutation {{ updatePlan(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "createMetric": ('mutation { createMetric(input: {code: "", name: "", kind: GAUGE}) { errors { code } } }', STAFF),
    "createAddon": ('mutation { createAddon(input: {name: "", slug: "", priceMonthly: "-1"}) { errors { code } } }',
                    STAFF),
    "updateAddon": (f"mutation {{ updateAddon(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "createCoupon": ('mutation { createCoupon(input: {code: "", discountType: PERCENTAGE, discountValue: "0"}) '
                     "{ errors { code } } }", STAFF),
    "updateCoupon": (f"mutation {{ updateCoupon(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "updateSubscription": (f"mutation {{ updateSubscription(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "refund": (f"mutation {{ refund(input: {{invoiceId: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    # invoice lifecycle (issue 21): staff only
    "voidInvoice": (f"mutation {{ voidInvoice(input: {{invoiceId: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "markInvoiceUncollectible": (f"mutation {{ markInvoiceUncollectible(input: {{invoiceId: {ID}}}) "
                                 "{ errors { code } } }", STAFF),
    "createCreditNote": (f"mutation {{ createCreditNote(input: {{invoiceId: {ID}, amount: \"1\", reason: OTHER, "
                         "outcome: REFUND}) { errors { code } } }", STAFF),
    # invoice lifecycle (issue 21): the account balance and one-off charges are super-admins'
    "adjustCreditBalance": (f'mutation {{ adjustCreditBalance(input: {{organizationId: {ID}, amount: "0", '
                            'currency: "IDR", reason: "r"}) { errors { code } } }', STAFF),
    "createInvoiceItem": (f'mutation {{ createInvoiceItem(input: {{organizationId: {ID}, description: "d", '
                          'amount: "0"}) { errors { code } } }', STAFF),
    "deleteInvoiceItem": (f"mutation {{ deleteInvoiceItem(input: {{id: {ID}}}) {{ errors {{ code }} }} }}", STAFF),
    "createOneOffInvoice": (f"mutation {{ createOneOffInvoice(input: {{organizationId: {ID}, items: []}}) "
                            "{ errors { code } } }", STAFF),
    "advanceClock": ('mutation { advanceClock(input: {to: "2020-01-01T00:00:00Z"}) { errors { code } } }', STAFF),
    # usage (issue 9): partners read their snapshots and nothing else
    "usage": ("{ usage { usageMonth } }", READERS),
    "entitlements": ("{ entitlements { status } }", READERS),
    "planLimits": ("{ planLimits { isTrial } }", READERS),
    "usageSnapshots": (f"{{ usageSnapshots(organizationIds: []) {{ edges {{ node {{ month }} }} }} }}",
                       frozenset({SA, PARTNER})),
    "recordUsage": ("mutation { recordUsage(input: {events: []}) { accepted errors { code } } }", MANAGERS),
    "grantPartnerAccess": (f"mutation {{ grantPartnerAccess(input: {{apiKeyId: {ID}, organizationId: {ID}}}) "
                           "{ errors { code } } }", STAFF),
    "revokePartnerAccess": (f"mutation {{ revokePartnerAccess(input: {{apiKeyId: {ID}, organizationId: {ID}}}) "
                            "{ errors { code } } }", STAFF),
    # webhooks (issue 11)
    "webhookEndpoints": ("{ webhookEndpoints { id } }", MANAGERS),
    "webhookDeliveries": ("{ webhookDeliveries { edges { node { id } } } }", MANAGERS),
    "createWebhookEndpoint": ('mutation { createWebhookEndpoint(input: {url: "ftp://x", events: []}) '
                              "{ errors { code } } }", MANAGERS),
    "updateWebhookEndpoint": (f"mutation {{ updateWebhookEndpoint(input: {{id: {ID}}}) {{ errors {{ code }} }} }}",
                              MANAGERS),
    "deleteWebhookEndpoint": (f"mutation {{ deleteWebhookEndpoint(input: {{id: {ID}}}) {{ errors {{ code }} }} }}",
                              MANAGERS),
    "rotateWebhookSecret": (f"mutation {{ rotateWebhookSecret(input: {{endpointId: {ID}}}) {{ errors {{ code }} }} }}",
                            MANAGERS),
    "redeliverWebhook": (f"mutation {{ redeliverWebhook(input: {{deliveryId: {ID}}}) {{ errors {{ code }} }} }}",
                         MANAGERS),
    "sendTestWebhook": (f"mutation {{ sendTestWebhook(input: {{endpointId: {ID}}}) {{ errors {{ code }} }} }}",
                        MANAGERS),
    # analytics (issue 12)
    "analytics": ('{ analytics(from: "2026-01-01", to: "2026-01-31", currency: "IDR") { mrr { amount } } }', STAFF),
}


def test_the_table_covers_every_root_field():
    schema = build_schema(SCHEMA_FILE.read_text())
    fields = set(schema.query_type.fields) | set(schema.mutation_type.fields)
    assert fields == set(ROLE_TABLE)


@pytest.mark.parametrize("field", sorted(ROLE_TABLE))
async def test_role_table(api, keys, field):
    document, allowed = ROLE_TABLE[field]
    seen = {}
    for role in ROLES:
        result = await api.post(document, token=getattr(keys, role))
        codes = {error.get("extensions", {}).get("code") for error in result.get("errors") or []}
        assert "UNAUTHENTICATED" not in codes, (role, result)
        seen[role] = "FORBIDDEN" not in codes
        if seen[role]:  # allowed: an answer (a coded refusal at most, e.g. the test clock off), never a crash
            assert codes <= {"BAD_USER_INPUT"}, (role, result)
            assert all(error["message"] != "Unexpected error." for error in result.get("errors") or []), result
    assert {role for role, ok in seen.items() if ok} == allowed, seen


async def test_credit_balance_is_zero_not_null(api, keys):
    data = await api.ok("{ viewer { organization { creditBalance { amount currency } } } }", token=keys.member)
    assert data["viewer"]["organization"]["creditBalance"] == {"amount": "0", "currency": "IDR"}


async def test_the_balance_ledger_is_for_those_who_run_billing(api, keys):
    """Organization.creditBalanceTransactions: owners, admins and super-admins; a member is FORBIDDEN."""
    document = "{ viewer { organization { creditBalanceTransactions { edges { node { id } } } } } }"
    for role in (OWNER, ADMIN):
        data = await api.ok(document, token=getattr(keys, role))
        assert data["viewer"]["organization"]["creditBalanceTransactions"] == {"edges": []}
    result = await api.post(document, token=keys.member)
    assert {error["extensions"]["code"] for error in result["errors"]} == {"FORBIDDEN"}
    assert result["data"]["viewer"]["organization"]["creditBalanceTransactions"] is None
