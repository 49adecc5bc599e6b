"""Coupons speak seed 001's terms: discountValue (percent for PERCENTAGE, major units for FIXED)."""

from __future__ import annotations

CREATE = """mutation($i: CreateCouponInput!) { createCoupon(input: $i) {
  coupon { id code discountType discountValue currency percentOff amountOff { amount } } errors { code field } } }"""
UPDATE = """mutation($i: UpdateCouponInput!) { updateCoupon(input: $i) {
  coupon { discountType discountValue currency } errors { code field message } } }"""


async def test_create_and_read_back_both_kinds(api, keys):
    percent = (await api.ok(CREATE, {"i": {"code": "tenoff", "discountType": "PERCENTAGE", "discountValue": "10"}},
                            token=keys.super_admin))["createCoupon"]
    assert percent["errors"] == []
    assert {k: percent["coupon"][k] for k in ("discountType", "discountValue", "currency", "percentOff")} == {
        "discountType": "PERCENTAGE", "discountValue": "10", "currency": None, "percentOff": 10}
    fixed = (await api.ok(CREATE, {"i": {"code": "launch50k", "discountType": "FIXED", "discountValue": "50000",
                                         "currency": "IDR"}}, token=keys.super_admin))["createCoupon"]
    assert fixed["coupon"]["discountValue"] == "50000" and fixed["coupon"]["amountOff"] == {"amount": "50000"}
    usd = (await api.ok(CREATE, {"i": {"code": "five", "discountType": "FIXED", "discountValue": "5.5",
                                       "currency": "USD"}}, token=keys.super_admin))["createCoupon"]
    assert usd["coupon"]["discountValue"] == "5.50"


async def test_update_discount_value_in_the_stored_or_new_terms(api, keys):
    created = (await api.ok(CREATE, {"i": {"code": "change", "discountType": "PERCENTAGE", "discountValue": "10"}},
                            token=keys.super_admin))["createCoupon"]["coupon"]
    raised = (await api.ok(UPDATE, {"i": {"id": created["id"], "discountValue": "15"}},
                           token=keys.super_admin))["updateCoupon"]
    assert raised["errors"] == [] and raised["coupon"]["discountValue"] == "15"
    fixed = (await api.ok(UPDATE, {"i": {"id": created["id"], "discountType": "FIXED", "discountValue": "2.00",
                                         "currency": "USD"}}, token=keys.super_admin))["updateCoupon"]
    assert fixed["errors"] == [] and fixed["coupon"] == {"discountType": "FIXED", "discountValue": "2.00",
                                                          "currency": "USD"}
    fraction = (await api.ok(UPDATE, {"i": {"id": created["id"], "discountType": "PERCENTAGE",
                                            "discountValue": "7.5"}}, token=keys.super_admin))["updateCoupon"]
    assert [(e["code"], e["field"]) for e in fraction["errors"]] == [("VALIDATION", "discountValue")]
