"""Razorpay behind the gateway protocol.

- Orders: ``POST {base_url}/v1/orders`` with HTTP basic auth (key id, key secret). Razorpay
  takes amounts in the currency's ISO 4217 subunit: our minor units everywhere but IDR, which we
  keep in whole rupiah (exponent 0) and Razorpay counts in sen (exponent 2), so IDR amounts are
  multiplied by 100 on the way out and divided on the way back (``to_razorpay_units``). For
  three-decimal currencies Razorpay wants the last digit 0; other amounts are refused.
- Checkout confirmation: ``razorpay_signature`` is the hex HMAC-SHA256 of
  ``order_id + "|" + payment_id`` keyed with the key secret, compared in constant time.
- Webhooks: ``X-Razorpay-Signature`` is the hex HMAC-SHA256 of the raw request body keyed
  with the webhook secret (set in Razorpay's dashboard), compared in constant time.
- Refunds: ``POST /v1/payments/{id}/refund`` with the ``X-Refund-Idempotency`` header set to
  our idempotency key, so a retry after a timeout never refunds twice. Razorpay answers
  ``pending`` or ``processed`` for an accepted refund and ``failed`` otherwise.
- Saving the checkout's method: a checkout order is created for the organization's Razorpay
  customer with a ``token`` request (``frequency: as_presented``), so the method the customer
  pays it with (and consents to save in Checkout) is tokenized; ``saved_method`` then reads
  ``GET /v1/payments/{id}?expand[]=card``: its ``token_id`` (None when Razorpay kept none), the
  method and the card's network and last 4 digits.
- Saved-token charges (renewals) use Razorpay's recurring payments: an order, then
  ``POST /v1/payments/create/recurring`` with the customer's token. Razorpay has no idempotency
  header for either, so the order's receipt is our idempotency key and a charge first looks for
  an order with that receipt (``GET /v1/orders?receipt=``) and its payments: a retry after a
  timeout finds the first attempt's payment instead of charging again. Razorpay requires the
  customer's email and contact there, read from the customer. The payment it creates is
  reported as succeeded; its later capture or failure arrives by webhook.

A transport error, a timeout or a 5xx/401/409 answer is a ``GatewayError`` (the outcome is
unknown or the call may be retried with the same idempotency key); a 4xx ``BAD_REQUEST_ERROR``
on a charge is a decline.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

from billing_graphql.domain.money import exponent

from billing_graphql.gateways.base import (
    ChargeOutcome,
    ChargeResult,
    GatewayError,
    Order,
    RefundResult,
    SavedMethod,
)

DEFAULT_TIMEOUT_SECONDS = 15.0
RECEIPT_MAX_LENGTH = 40  # Razorpay's limit on an order's receipt


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _signature_matches(expected_hex: str, given: str | None) -> bool:
    if not given:
        return False
    # Exact match, as Razorpay's SDKs compare; compare_digest on ASCII bytes: constant time for equal lengths, False otherwise.
    try:
        return hmac.compare_digest(expected_hex.encode("ascii"), given.encode("ascii"))
    except UnicodeEncodeError:
        return False


def verify_webhook_signature(body: bytes, signature: str | None, webhook_secret: str | None) -> bool:
    """``X-Razorpay-Signature``: hex HMAC-SHA256 of the raw body with the webhook secret."""
    if not webhook_secret:
        return False
    return _signature_matches(hmac_sha256_hex(webhook_secret, body), signature)


# Razorpay's payment methods as our payment method types.
RAZORPAY_METHOD_TYPES = {"card": "CREDIT_CARD", "upi": "E_WALLET", "wallet": "E_WALLET",
                         "emandate": "BANK_TRANSFER", "nach": "BANK_TRANSFER", "netbanking": "BANK_TRANSFER"}

# Where Razorpay's subunit differs from ours (DESIGN.md keeps IDR in whole rupiah).
RAZORPAY_EXPONENTS = {"IDR": 2}


def to_razorpay_units(amount: int, currency: str) -> int:
    """Our integer minor units as Razorpay's integer subunits of ``currency``."""
    ours = exponent(currency)
    theirs = RAZORPAY_EXPONENTS.get(currency, ours)
    units = amount * 10 ** (theirs - ours)
    if theirs == 3 and units % 10:
        raise GatewayError(f"Razorpay takes {currency} amounts in whole multiples of 0.010.")
    return units


class RazorpayGateway:
    name = "razorpay"

    def __init__(
        self,
        *,
        key_id: str,
        key_secret: str,
        webhook_secret: str | None = None,
        base_url: str = "https://api.razorpay.com",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not key_id or not key_secret:
            raise GatewayError("Razorpay needs BILLING_RAZORPAY_KEY_ID and BILLING_RAZORPAY_KEY_SECRET.")
        self.key_id = key_id
        self._key_secret = key_secret
        self._webhook_secret = webhook_secret
        self.base_url = base_url.rstrip("/")
        self._transport = transport
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Any, *, transport: httpx.AsyncBaseTransport | None = None) -> RazorpayGateway:
        return cls(
            key_id=settings.razorpay_key_id or "",
            key_secret=settings.razorpay_key_secret or "",
            webhook_secret=settings.razorpay_webhook_secret,
            base_url=settings.razorpay_base_url,
            transport=transport,
        )

    def __repr__(self) -> str:  # never the secrets
        return f"RazorpayGateway(key_id={self.key_id!r}, base_url={self.base_url!r})"

    # -- signatures -------------------------------------------------------------------------

    def payment_signature(self, *, order_id: str, payment_id: str) -> str:
        """The signature Razorpay Checkout returns for this order and payment."""
        return hmac_sha256_hex(self._key_secret, f"{order_id}|{payment_id}".encode())

    def verify_payment_signature(self, *, order_id: str, payment_id: str, signature: str) -> bool:
        if not order_id or not payment_id:
            return False
        return _signature_matches(self.payment_signature(order_id=order_id, payment_id=payment_id), signature)

    def verify_webhook(self, *, body: bytes, signature: str) -> bool:
        return verify_webhook_signature(body, signature, self._webhook_secret)

    # -- HTTP -------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, json: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                auth=(self.key_id, self._key_secret),
                timeout=self._timeout,
                transport=self._transport,
            ) as client:
                response = await client.request(method, path, json=json, headers=headers, params=params)
        except httpx.HTTPError as exc:
            raise GatewayError(f"Razorpay could not be reached: {type(exc).__name__}.") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return response.status_code, body

    @staticmethod
    def _error_text(status: int, body: dict[str, Any]) -> str:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = error.get("code") or f"HTTP {status}"
        description = error.get("description") or "no description"
        return f"Razorpay answered {status} {code}: {description}"

    async def _ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, body = await self._request(method, path, **kwargs)
        if not 200 <= status < 300:
            raise GatewayError(self._error_text(status, body))
        return body

    # -- the protocol -----------------------------------------------------------------------

    async def create_customer(self, *, organization_id: str, name: str, email: str | None) -> str:
        payload: dict[str, Any] = {"name": name[:50], "fail_existing": "0", "notes": {"organization_id": organization_id}}
        if email:
            payload["email"] = email
        body = await self._ok("POST", "/v1/customers", json=payload)
        customer_id = body.get("id")
        if not isinstance(customer_id, str):
            raise GatewayError("Razorpay returned a customer without an id.")
        return customer_id

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, idempotency_key: str, customer_id: str | None = None,
        save_method: bool = False,
    ) -> Order:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise GatewayError("An order amount is a positive integer of minor units.")
        units = to_razorpay_units(amount, currency)
        payload: dict[str, Any] = {
            "amount": units,
            "currency": currency,
            "receipt": receipt[:RECEIPT_MAX_LENGTH],
            "payment_capture": True,
            "notes": {"idempotency_key": idempotency_key},
        }
        if save_method and customer_id:
            payload["customer_id"] = customer_id
            payload["token"] = {"frequency": "as_presented"}
        body = await self._ok("POST", "/v1/orders", json=payload)
        order_id = body.get("id")
        if not isinstance(order_id, str) or body.get("amount") != units or body.get("currency") != currency:
            raise GatewayError("Razorpay returned an order that does not match the request.")
        return Order(order_id=order_id, amount=amount, currency=currency, key_id=self.key_id)

    async def saved_method(self, *, order_id: str, payment_id: str) -> SavedMethod | None:
        body = await self._ok("GET", f"/v1/payments/{payment_id}?expand[]=card")
        if body.get("order_id") != order_id:
            raise GatewayError("Razorpay returned a payment of another order.")
        token = body.get("token_id")
        if not isinstance(token, str) or not token:
            return None
        method = body.get("method")
        card = body.get("card") if isinstance(body.get("card"), dict) else {}
        brand = card.get("network") if isinstance(card.get("network"), str) else None
        last4 = card.get("last4") if isinstance(card.get("last4"), str) else None
        label = " ".join(part for part in (brand or str(method or "Razorpay"), f"ending {last4}" if last4 else "")
                         if part)
        return SavedMethod(token=token, type=RAZORPAY_METHOD_TYPES.get(method, "CREDIT_CARD"), label=label,
                           brand=brand, last4=last4)

    async def charge(
        self,
        *,
        customer_id: str | None,
        payment_method_token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        if not customer_id:
            return ChargeResult(
                outcome=ChargeOutcome.DECLINED,
                failure_code="customer_missing",
                failure_message="Razorpay charges a saved token only for a Razorpay customer.",
            )
        order_id, earlier = await self._earlier_attempt(idempotency_key)
        if earlier is not None:
            return earlier
        customer = await self._ok("GET", f"/v1/customers/{customer_id}")
        if order_id is None:
            order_id = (await self.create_order(
                amount=amount, currency=currency, receipt=idempotency_key, idempotency_key=idempotency_key
            )).order_id
        status, body = await self._request(
            "POST",
            "/v1/payments/create/recurring",
            json={
                "email": customer.get("email") or "",
                "contact": customer.get("contact") or "",
                "amount": to_razorpay_units(amount, currency),
                "currency": currency,
                "order_id": order_id,
                "customer_id": customer_id,
                "token": payment_method_token,
                "recurring": "1",
                "description": description[:255],
                "notes": {"idempotency_key": idempotency_key},
            },
        )
        if 200 <= status < 300 and isinstance(body.get("razorpay_payment_id"), str):
            return ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_payment_id=body["razorpay_payment_id"])
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if status == 400 and error.get("code") == "BAD_REQUEST_ERROR":
            return ChargeResult(
                outcome=ChargeOutcome.DECLINED,
                failure_code=str(error.get("reason") or "card_declined"),
                failure_message=str(error.get("description") or "The payment was declined."),
            )
        raise GatewayError(self._error_text(status, body))

    @staticmethod
    def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
        items = body.get("items")
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    async def _earlier_attempt(self, idempotency_key: str) -> tuple[str | None, ChargeResult | None]:
        """The order an earlier charge with this key made (its receipt), and that charge's result
        when it got as far as a payment."""
        receipt = idempotency_key[:RECEIPT_MAX_LENGTH]
        orders = [order for order in self._items(await self._ok("GET", "/v1/orders", params={"receipt": receipt}))
                  if order.get("receipt") == receipt and isinstance(order.get("id"), str)]
        if not orders:
            return None, None
        order_id = orders[0]["id"]
        payments = self._items(await self._ok("GET", f"/v1/orders/{order_id}/payments"))
        for payment in payments:
            if isinstance(payment.get("id"), str) and payment.get("status") != "failed":
                return order_id, ChargeResult(outcome=ChargeOutcome.SUCCEEDED, gateway_payment_id=payment["id"])
        for payment in payments:
            if isinstance(payment.get("id"), str):
                return order_id, ChargeResult(
                    outcome=ChargeOutcome.DECLINED, gateway_payment_id=payment["id"],
                    failure_code=str(payment.get("error_reason") or payment.get("error_code") or "payment_failed"),
                    failure_message=str(payment.get("error_description") or "The payment was declined."),
                )
        return order_id, None

    async def refund(self, *, gateway_payment_id: str, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        status, body = await self._request(
            "POST",
            f"/v1/payments/{gateway_payment_id}/refund",
            json={
                "amount": to_razorpay_units(amount, currency),
                "speed": "normal",
                "notes": {"idempotency_key": idempotency_key},
            },
            headers={"X-Refund-Idempotency": idempotency_key},
        )
        if 200 <= status < 300:
            refund_status = body.get("status")
            if refund_status in ("pending", "processed"):
                return RefundResult(succeeded=True, gateway_refund_id=body.get("id"))
            return RefundResult(
                succeeded=False,
                gateway_refund_id=body.get("id"),
                failure_message=f"Razorpay reports the refund as {refund_status!r}.",
            )
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if status == 400 and error.get("code") == "BAD_REQUEST_ERROR":
            return RefundResult(succeeded=False, failure_message=self._error_text(status, body))
        raise GatewayError(self._error_text(status, body))
