"""Razorpay: the published signature vectors, and the HTTP API against a mock transport."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from billing_graphql.gateways.base import ChargeOutcome, GatewayError
from billing_graphql.gateways.razorpay import RazorpayGateway

# Vectors from Razorpay's Python SDK (razorpay/razorpay-python, MIT): tests/helpers.py builds
# the client with auth ('key_id', 'key_secret'); tests/test_client_utility.py checks
# verify_payment_signature(order 'fake_order_id', payment 'fake_payment_id') against
# PAYMENT_SIGNATURE, and verify_webhook_signature(body of
# tests/mocks/fake_payment_authorized_webhook.json, WEBHOOK_SIGNATURE, secret 'key_secret').
SDK_KEY_ID = "key_id"
SDK_SECRET = "key_secret"
SDK_ORDER_ID = "fake_order_id"
SDK_PAYMENT_ID = "fake_payment_id"
PAYMENT_SIGNATURE = "b2335e3b0801106b84a7faff035df56ecffde06918c9ddd1f0fafbb37a51cc89"
WEBHOOK_SIGNATURE = "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e9"
WEBHOOK_BODY_PATH = Path(__file__).resolve().parents[1] / "data" / "razorpay_payment_authorized_webhook.json"
WEBHOOK_BODY_SHA256 = "9cc0236491299f34a154292eaed46d94b010f44b22095c034f884ca6a1862bef"


def sdk_gateway(**kwargs) -> RazorpayGateway:
    return RazorpayGateway(key_id=SDK_KEY_ID, key_secret=SDK_SECRET, webhook_secret=SDK_SECRET, **kwargs)


def webhook_body() -> bytes:
    body = WEBHOOK_BODY_PATH.read_bytes()
    assert hashlib.sha256(body).hexdigest() == WEBHOOK_BODY_SHA256, "the SDK's webhook body changed (line endings?)"
    return body


def flip(text: str, position: int) -> str:
    """Change one hex digit to another."""
    replacement = "0" if text[position] != "0" else "1"
    return text[:position] + replacement + text[position + 1 :]


def test_sdk_payment_signature_vector_passes():
    gateway = sdk_gateway()
    assert gateway.payment_signature(order_id=SDK_ORDER_ID, payment_id=SDK_PAYMENT_ID) == PAYMENT_SIGNATURE
    assert gateway.verify_payment_signature(order_id=SDK_ORDER_ID, payment_id=SDK_PAYMENT_ID, signature=PAYMENT_SIGNATURE)


@pytest.mark.parametrize("position", range(64))
def test_any_flipped_digit_of_the_payment_signature_fails(position):
    assert not sdk_gateway().verify_payment_signature(
        order_id=SDK_ORDER_ID, payment_id=SDK_PAYMENT_ID, signature=flip(PAYMENT_SIGNATURE, position)
    )


@pytest.mark.parametrize(
    ("order_id", "payment_id", "signature"),
    [
        (SDK_PAYMENT_ID, SDK_ORDER_ID, PAYMENT_SIGNATURE),  # swapped
        (SDK_ORDER_ID + "x", SDK_PAYMENT_ID, PAYMENT_SIGNATURE),
        (SDK_ORDER_ID, SDK_PAYMENT_ID, "test_signature"),  # the SDK's failing case
        (SDK_ORDER_ID, SDK_PAYMENT_ID, PAYMENT_SIGNATURE.upper()),
        (SDK_ORDER_ID, SDK_PAYMENT_ID, PAYMENT_SIGNATURE[:-1]),
        (SDK_ORDER_ID, SDK_PAYMENT_ID, ""),
        (SDK_ORDER_ID, SDK_PAYMENT_ID, "é" * 64),
        ("", SDK_PAYMENT_ID, PAYMENT_SIGNATURE),
    ],
)
def test_other_payment_signatures_fail(order_id, payment_id, signature):
    assert not sdk_gateway().verify_payment_signature(order_id=order_id, payment_id=payment_id, signature=signature)


def test_another_key_secret_fails_the_vector():
    gateway = RazorpayGateway(key_id=SDK_KEY_ID, key_secret="key_secreT")
    assert not gateway.verify_payment_signature(order_id=SDK_ORDER_ID, payment_id=SDK_PAYMENT_ID, signature=PAYMENT_SIGNATURE)


def test_sdk_webhook_vector_passes_and_a_flipped_byte_fails():
    gateway = sdk_gateway()
    body = webhook_body()
    assert gateway.verify_webhook(body=body, signature=WEBHOOK_SIGNATURE)
    assert not gateway.verify_webhook(body=body, signature=flip(WEBHOOK_SIGNATURE, 0))
    assert not gateway.verify_webhook(body=body, signature=flip(WEBHOOK_SIGNATURE, 63))
    for position in (0, 100, len(body) - 1):
        tampered = bytearray(body)
        tampered[position] ^= 0x01
        assert not gateway.verify_webhook(body=bytes(tampered), signature=WEBHOOK_SIGNATURE)
    # Re-serialized JSON is not the raw body: the signature is over bytes, not meaning.
    assert not gateway.verify_webhook(body=json.dumps(json.loads(body)).encode(), signature=WEBHOOK_SIGNATURE)


def test_webhook_fails_without_a_webhook_secret():
    gateway = RazorpayGateway(key_id=SDK_KEY_ID, key_secret=SDK_SECRET)
    assert not gateway.verify_webhook(body=webhook_body(), signature=WEBHOOK_SIGNATURE)


def test_secrets_stay_out_of_repr():
    assert SDK_SECRET not in repr(sdk_gateway())


class Processor:
    """A stand-in for Razorpay's HTTP API (an external processor), recording what it got."""

    def __init__(self, responses: dict[tuple[str, str], tuple[int, dict]]) -> None:
        self.responses = responses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.responses[(request.method, request.url.path)]
        return httpx.Response(status, json=body)

    def body(self, index: int) -> dict:
        return json.loads(self.requests[index].content)


def processor_gateway(responses) -> tuple[RazorpayGateway, Processor]:
    processor = Processor(responses)
    gateway = sdk_gateway(base_url="https://razorpay.test/", transport=httpx.MockTransport(processor))
    return gateway, processor


async def test_create_order_posts_minor_units_with_basic_auth():
    gateway, processor = processor_gateway(
        {("POST", "/v1/orders"): (200, {"id": "order_Abc123", "entity": "order", "amount": 29900, "currency": "INR",
                                         "status": "created", "receipt": "inv_1"})}
    )
    order = await gateway.create_order(amount=29900, currency="INR", receipt="inv_1", idempotency_key="order_key_1")
    assert (order.order_id, order.amount, order.currency, order.key_id) == ("order_Abc123", 29900, "INR", "key_id")
    [request] = processor.requests
    assert str(request.url) == "https://razorpay.test/v1/orders"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"key_id:key_secret").decode()
    sent = processor.body(0)
    assert sent["amount"] == 29900 and isinstance(sent["amount"], int)
    assert (sent["currency"], sent["receipt"]) == ("INR", "inv_1")


async def test_order_error_response_is_a_gateway_error():
    gateway, _ = processor_gateway(
        {("POST", "/v1/orders"): (400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "The amount is invalid",
                                                  "field": "amount"}})}
    )
    with pytest.raises(GatewayError, match="The amount is invalid"):
        await gateway.create_order(amount=1, currency="INR", receipt="r", idempotency_key="k")


async def test_server_error_unreachable_and_mismatched_orders_are_gateway_errors():
    gateway, _ = processor_gateway({("POST", "/v1/orders"): (502, {})})
    with pytest.raises(GatewayError, match="502"):
        await gateway.create_order(amount=100, currency="INR", receipt="r", idempotency_key="k")

    def unreachable(request):
        raise httpx.ConnectError("refused", request=request)

    gateway = sdk_gateway(transport=httpx.MockTransport(unreachable))
    with pytest.raises(GatewayError, match="could not be reached"):
        await gateway.create_order(amount=100, currency="INR", receipt="r", idempotency_key="k")

    gateway, _ = processor_gateway({("POST", "/v1/orders"): (200, {"id": "order_1", "amount": 99, "currency": "INR"})})
    with pytest.raises(GatewayError, match="does not match"):
        await gateway.create_order(amount=100, currency="INR", receipt="r", idempotency_key="k")
    with pytest.raises(GatewayError):
        await gateway.create_order(amount=0, currency="INR", receipt="r", idempotency_key="k")


async def test_refund_sends_the_idempotency_header_and_reads_the_status():
    gateway, processor = processor_gateway(
        {("POST", "/v1/payments/pay_1/refund"): (200, {"id": "rfnd_1", "entity": "refund", "amount": 500,
                                                       "status": "processed"})}
    )
    result = await gateway.refund(gateway_payment_id="pay_1", amount=500, currency="INR", idempotency_key="refund_abcdef123")
    assert (result.succeeded, result.gateway_refund_id) == (True, "rfnd_1")
    assert processor.requests[0].headers["x-refund-idempotency"] == "refund_abcdef123"
    assert processor.body(0)["amount"] == 500

    gateway, _ = processor_gateway(
        {("POST", "/v1/payments/pay_1/refund"): (400, {"error": {"code": "BAD_REQUEST_ERROR",
                                                                 "description": "The refund amount exceeds"}})}
    )
    refused = await gateway.refund(gateway_payment_id="pay_1", amount=500, currency="INR", idempotency_key="k" * 10)
    assert not refused.succeeded and "exceeds" in refused.failure_message

    gateway, _ = processor_gateway({("POST", "/v1/payments/pay_1/refund"): (409, {})})
    with pytest.raises(GatewayError):  # a prior request with this key is still in flight: retry later
        await gateway.refund(gateway_payment_id="pay_1", amount=500, currency="INR", idempotency_key="k" * 10)


async def test_charge_creates_an_order_and_a_recurring_payment():
    gateway, processor = processor_gateway(
        {
            ("GET", "/v1/orders"): (200, {"entity": "collection", "count": 0, "items": []}),
            ("GET", "/v1/customers/cust_1"): (200, {"id": "cust_1", "email": "billing@acme.test", "contact": "+62811"}),
            ("POST", "/v1/orders"): (200, {"id": "order_9", "amount": 150000, "currency": "INR"}),
            ("POST", "/v1/payments/create/recurring"): (200, {"razorpay_payment_id": "pay_9",
                                                              "razorpay_order_id": "order_9"}),
        }
    )
    result = await gateway.charge(customer_id="cust_1", payment_method_token="token_1", amount=150000, currency="INR",
                                  idempotency_key="payment_1", description="INV-202601-000001")
    assert (result.outcome, result.gateway_payment_id) == (ChargeOutcome.SUCCEEDED, "pay_9")
    assert processor.requests[0].url.params["receipt"] == "payment_1"  # an earlier attempt is looked for first
    recurring = processor.body(3)
    assert (recurring["order_id"], recurring["token"], recurring["amount"]) == ("order_9", "token_1", 150000)
    assert (recurring["email"], recurring["contact"]) == ("billing@acme.test", "+62811")


async def test_charge_decline_is_a_declined_result():
    gateway, _ = processor_gateway(
        {
            ("GET", "/v1/orders"): (200, {"entity": "collection", "count": 0, "items": []}),
            ("GET", "/v1/customers/cust_1"): (200, {"id": "cust_1", "email": "a@b.test", "contact": "+1"}),
            ("POST", "/v1/orders"): (200, {"id": "order_9", "amount": 100, "currency": "INR"}),
            ("POST", "/v1/payments/create/recurring"): (400, {"error": {"code": "BAD_REQUEST_ERROR",
                                                                        "description": "Payment failed",
                                                                        "reason": "payment_failed"}}),
        }
    )
    result = await gateway.charge(customer_id="cust_1", payment_method_token="token_1", amount=100, currency="INR",
                                  idempotency_key="payment_2", description="x")
    assert (result.outcome, result.failure_code) == (ChargeOutcome.DECLINED, "payment_failed")


def test_missing_keys_are_refused():
    with pytest.raises(GatewayError):
        RazorpayGateway(key_id="", key_secret="s")


async def test_idr_orders_are_sent_in_sen_and_returned_in_rupiah():
    # We keep IDR in whole rupiah; Razorpay counts IDR in sen (ISO 4217 exponent 2):
    # Rp 166,500 is 16,650,000 sen on the wire and Rp 166,500 again in our Order.
    gateway, processor = processor_gateway(
        {("POST", "/v1/orders"): (200, {"id": "order_Idr1", "amount": 16650000, "currency": "IDR"})}
    )
    order = await gateway.create_order(amount=166500, currency="IDR", receipt="INV-1", idempotency_key="k")
    assert processor.body(0)["amount"] == 16650000
    assert (order.amount, order.currency) == (166500, "IDR")


async def test_idr_refunds_are_sent_in_sen():
    gateway, processor = processor_gateway(
        {("POST", "/v1/payments/pay_1/refund"): (200, {"id": "rfnd_1", "status": "processed"})}
    )
    result = await gateway.refund(gateway_payment_id="pay_1", amount=50000, currency="IDR", idempotency_key="r1")
    assert result.succeeded
    assert processor.body(0)["amount"] == 5000000


@pytest.mark.parametrize(("amount", "currency", "units"),
                         [(29900, "INR", 29900), (1900, "USD", 1900), (500, "JPY", 500), (299000, "IDR", 29900000),
                          (12340, "KWD", 12340)])
def test_to_razorpay_units(amount, currency, units):
    from billing_graphql.gateways.razorpay import to_razorpay_units

    assert to_razorpay_units(amount, currency) == units


def test_three_decimal_amounts_must_end_in_zero_for_razorpay():
    from billing_graphql.gateways.base import GatewayError
    from billing_graphql.gateways.razorpay import to_razorpay_units

    with pytest.raises(GatewayError, match="0.010"):
        to_razorpay_units(12345, "KWD")


async def test_a_checkout_order_asks_to_save_the_method_and_the_payment_tells_its_token():
    gateway, processor = processor_gateway({
        ("POST", "/v1/orders"): (200, {"id": "order_S1", "amount": 29900, "currency": "INR"}),
        ("GET", "/v1/payments/pay_S1"): (200, {"id": "pay_S1", "order_id": "order_S1", "method": "upi",
                                               "token_id": "token_S1"}),
        ("GET", "/v1/payments/pay_S2"): (200, {"id": "pay_S2", "order_id": "order_S1", "method": "card"}),
        ("GET", "/v1/payments/pay_S3"): (200, {"id": "pay_S3", "order_id": "order_OTHER", "token_id": "token_S3"}),
    })
    await gateway.create_order(amount=29900, currency="INR", receipt="r", idempotency_key="k", customer_id="cust_1",
                               save_method=True)
    sent = processor.body(0)
    assert (sent["customer_id"], sent["token"]) == ("cust_1", {"frequency": "as_presented"})
    saved = await gateway.saved_method(order_id="order_S1", payment_id="pay_S1")
    assert (saved.token, saved.type, saved.label, saved.last4) == ("token_S1", "E_WALLET", "upi", None)
    assert processor.requests[1].url.params["expand[]"] == "card"
    assert await gateway.saved_method(order_id="order_S1", payment_id="pay_S2") is None  # no token kept
    with pytest.raises(GatewayError, match="another order"):
        await gateway.saved_method(order_id="order_S1", payment_id="pay_S3")
