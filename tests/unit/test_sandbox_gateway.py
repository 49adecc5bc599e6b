"""The sandbox processor: outcomes by token, ids by idempotency key."""

from __future__ import annotations

import pytest

from billing_graphql.gateways import ChargeOutcome, GatewayError, get_gateway
from billing_graphql.gateways.sandbox import SandboxGateway, sign_payment
from billing_graphql.settings import Settings


async def charge(token: str, key: str = "pay_1", amount: int = 1000):
    return await SandboxGateway(slow_seconds=0).charge(
        customer_id=None, payment_method_token=token, amount=amount, currency="IDR",
        idempotency_key=key, description="test",
    )


@pytest.mark.parametrize("token", ["pm_card_visa", "pm_card_mastercard", "tok_visa", "pm_card_slow", "pm_other"])
async def test_succeeding_tokens(token):
    result = await charge(token)
    assert result.outcome is ChargeOutcome.SUCCEEDED
    assert result.gateway_payment_id.startswith("ch_sandbox_")
    assert result.failure_code is None


@pytest.mark.parametrize(
    ("token", "code"),
    [("pm_card_declined", "card_declined"), ("pm_card_insufficient_funds", "insufficient_funds"),
     ("pm_card_expired", "expired_card"), ("pm_card_chargeDeclinedExpiredCard", "expired_card")],
)
async def test_declining_tokens(token, code):
    result = await charge(token)
    assert result.outcome is ChargeOutcome.DECLINED
    assert result.failure_code == code
    assert result.failure_message


async def test_error_token_raises():
    with pytest.raises(GatewayError):
        await charge("pm_card_error")


async def test_slow_token_sleeps(monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr("billing_graphql.gateways.sandbox.asyncio.sleep", fake_sleep)
    result = await SandboxGateway().charge(
        customer_id=None, payment_method_token="pm_card_slow", amount=1, currency="IDR",
        idempotency_key="k", description="d",
    )
    assert result.outcome is ChargeOutcome.SUCCEEDED
    assert slept == [0.05]


async def test_ids_follow_the_idempotency_key():
    assert (await charge("pm_card_visa", "pay_a")).gateway_payment_id == (await charge("pm_card_visa", "pay_a")).gateway_payment_id
    assert (await charge("pm_card_visa", "pay_a")).gateway_payment_id != (await charge("pm_card_visa", "pay_b")).gateway_payment_id


async def test_non_positive_amount_is_an_error():
    with pytest.raises(GatewayError):
        await charge("pm_card_visa", amount=0)


async def test_refund_order_and_signatures():
    gateway = SandboxGateway()
    refund = await gateway.refund(gateway_payment_id="ch", amount=5, currency="IDR", idempotency_key="ref_1")
    assert refund.succeeded and refund.gateway_refund_id == (
        await gateway.refund(gateway_payment_id="ch", amount=5, currency="IDR", idempotency_key="ref_1")
    ).gateway_refund_id
    order = await gateway.create_order(amount=100, currency="IDR", receipt="r", idempotency_key="ord_1")
    assert order.order_id.startswith("order_sandbox_") and order.amount == 100
    signature = sign_payment(order.order_id, "pay_x")
    assert gateway.verify_payment_signature(order_id=order.order_id, payment_id="pay_x", signature=signature)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert not gateway.verify_payment_signature(order_id=order.order_id, payment_id="pay_x", signature=flipped)
    assert not gateway.verify_webhook(body=b"{}", signature="nope")


def test_get_gateway():
    settings = Settings()
    assert get_gateway("sandbox", settings).name == "sandbox"
    with pytest.raises(ValueError, match="Unknown payment gateway"):
        get_gateway("paypal", settings)
