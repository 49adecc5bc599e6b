"""startCheckout / confirmCheckout over HTTP with the sandbox gateway."""

from __future__ import annotations

from billing_graphql.db.models import CheckoutSession, Invoice, Payment, Subscription
from billing_graphql.gateways.sandbox import sign_payment
from tests.factories import count_rows, make_plan, make_subscription
from tests.helpers import gid

START = """
mutation Start($input: StartCheckoutInput!) {
  startCheckout(input: $input) {
    gateway orderId keyId currency
    amount { amount currency formatted }
    invoice { id status invoiceNumber billingReason subscription { id } total { amount } amountDue { amount } }
    errors { code message field }
  }
}
"""

CONFIRM = """
mutation Confirm($input: ConfirmCheckoutInput!) {
  confirmCheckout(input: $input) {
    subscription { id status isTrial plan { id } }
    invoice { id status amountDue { amount } subscription { id } }
    payment { id status gateway gatewayPaymentId amount { amount } }
    errors { code message field }
  }
}
"""


async def test_owner_checks_out_and_confirms(api, db, keys):
    plan = await make_plan(db, monthly=299000, trial_days=14)
    started = (await api.ok(START, {"input": {"planId": gid("Plan", plan.id), "billingPeriod": "MONTHLY"}},
                            token=keys.owner))["startCheckout"]
    assert started["errors"] == []
    assert (started["gateway"], started["keyId"], started["currency"]) == ("sandbox", "sandbox", "IDR")
    # 299,000 + PPN 12% of 11/12 (32,890)
    assert started["amount"] == {"amount": "331890", "currency": "IDR", "formatted": "Rp 331,890"}
    invoice = started["invoice"]
    assert (invoice["status"], invoice["billingReason"], invoice["subscription"]) == (
        "OPEN", "SUBSCRIPTION_CREATE", None)
    assert invoice["amountDue"] == {"amount": "331890"} and invoice["invoiceNumber"].startswith("INV-")

    order_id = started["orderId"]
    variables = {"input": {"orderId": order_id, "paymentId": "pay_1", "signature": sign_payment(order_id, "pay_1"),
                           "idempotencyKey": "confirm-1"}}
    confirmed = (await api.ok(CONFIRM, variables, token=keys.admin))["confirmCheckout"]
    assert confirmed["errors"] == []
    subscription = confirmed["subscription"]
    assert (subscription["status"], subscription["isTrial"], subscription["plan"]["id"]) == (
        "ACTIVE", False, gid("Plan", plan.id))
    assert confirmed["invoice"] == {"id": invoice["id"], "status": "PAID", "amountDue": {"amount": "0"},
                                    "subscription": {"id": subscription["id"]}}
    assert confirmed["payment"]["status"] == "SUCCEEDED" and confirmed["payment"]["gatewayPaymentId"] == "pay_1"
    # Replays (same key, or same order and payment without a key) change nothing.
    assert (await api.ok(CONFIRM, variables, token=keys.owner))["confirmCheckout"] == confirmed
    del variables["input"]["idempotencyKey"]
    assert (await api.ok(CONFIRM, variables, token=keys.owner))["confirmCheckout"] == confirmed
    assert (await count_rows(db, Subscription), await count_rows(db, Payment)) == (1, 1)
    # Now subscribed: another checkout is refused.
    again = (await api.ok(START, {"input": {}}, token=keys.owner))["startCheckout"]
    assert [e["code"] for e in again["errors"]] == ["ALREADY_SUBSCRIBED"] and again["orderId"] is None


async def test_invalid_signature_and_foreign_orders_are_errors(api, db, keys):
    await make_plan(db)
    started = (await api.ok(START, {"input": {}}, token=keys.owner))["startCheckout"]
    order_id = started["orderId"]
    bad = {"input": {"orderId": order_id, "paymentId": "pay_1", "signature": "00" * 32}}
    result = (await api.ok(CONFIRM, bad, token=keys.owner))["confirmCheckout"]
    assert [(e["code"], e["field"]) for e in result["errors"]] == [("INVALID_SIGNATURE", "signature")]
    assert result["subscription"] is None
    signed = {"input": {"orderId": order_id, "paymentId": "pay_1", "signature": sign_payment(order_id, "pay_1")}}
    foreign = (await api.ok(CONFIRM, signed, token=keys.other_owner))["confirmCheckout"]
    assert [(e["code"], e["field"]) for e in foreign["errors"]] == [("NOT_FOUND", "orderId")]
    assert (await count_rows(db, Subscription), await count_rows(db, Payment)) == (0, 0)


async def test_errors_of_start_are_data(api, db, keys):
    plan = await make_plan(db)
    cases = [
        ({"planId": gid("Plan", keys.organization_id)}, "PLAN_NOT_FOUND", "planId"),
        ({"couponCode": "NOPE"}, "COUPON_INVALID", "couponCode"),
        ({"gateway": "paypal"}, "VALIDATION", "gateway"),
    ]
    for payload, code, field in cases:
        result = (await api.ok(START, {"input": payload}, token=keys.owner))["startCheckout"]
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], payload
    assert await count_rows(db, Invoice) == 0 and await count_rows(db, CheckoutSession) == 0
    await make_subscription(db, keys.organization_id, plan=plan)
    result = (await api.ok(START, {"input": {}}, token=keys.owner))["startCheckout"]
    assert [e["code"] for e in result["errors"]] == ["ALREADY_SUBSCRIBED"]


async def test_super_admin_names_the_organization(api, db, keys):
    await make_plan(db)
    missing = (await api.ok(START, {"input": {}}, token=keys.super_admin))["startCheckout"]
    assert [(e["code"], e["field"]) for e in missing["errors"]] == [("VALIDATION", "organizationId")]
    started = (await api.ok(START, {"input": {"organizationId": keys.organization_gid}}, token=keys.super_admin))
    assert started["startCheckout"]["errors"] == []


async def test_members_partners_and_anonymous_callers_may_not_check_out(api, db, keys):
    await make_plan(db)
    for token, code in ((keys.member, "FORBIDDEN"), (keys.partner, "FORBIDDEN"), (None, "UNAUTHENTICATED")):
        result = await api.post(START, {"input": {}}, token=token)
        assert result["data"] == {"startCheckout": None}
        assert result["errors"][0]["extensions"]["code"] == code
        confirm = {"input": {"orderId": "order_x", "paymentId": "pay_x", "signature": "x"}}
        result = await api.post(CONFIRM, confirm, token=token)
        assert result["data"] == {"confirmCheckout": None}
        assert result["errors"][0]["extensions"]["code"] == code
    assert await count_rows(db, Invoice) == 0
