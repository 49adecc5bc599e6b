"""A stateful stand-in for Razorpay's HTTP API (the endpoints the gateway calls), as an httpx
transport: customers, orders (filtered by receipt), recurring payments on saved tokens, payments of
an order, refunds with ``X-Refund-Idempotency``. Amounts are Razorpay's subunits."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

DECLINING_TOKEN_PREFIX = "token_declines_"


@dataclass
class RazorpayFake:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> customer
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_keys: dict[str, str] = field(default_factory=dict)
    lose_next_answer_to: str | None = None  # a path whose next answer is lost after the work is done
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_Fake{next(self._ids):06d}"

    def save_token(self, customer_id: str, *, declines: bool = False) -> str:
        token = self._id(DECLINING_TOKEN_PREFIX.rstrip("_") if declines else "token")
        self.tokens[token] = customer_id
        return token

    def handle(self, request: httpx.Request) -> httpx.Response:
        status, body = self._route(request)
        if self.lose_next_answer_to == request.url.path:
            self.lose_next_answer_to = None
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(status, json=body)

    @staticmethod
    def _error(description: str, reason: str = "input_validation_failed") -> tuple[int, dict[str, Any]]:
        return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": description, "reason": reason}}

    def _route(self, request: httpx.Request) -> tuple[int, dict[str, Any]]:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else {}
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/v1/customers"):
            customer = {"id": self._id("cust"), "entity": "customer", "email": body.get("email"),
                        "contact": "+910000000000", "name": body.get("name")}
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "GET" and parts[:2] == ["v1", "customers"] and len(parts) == 3:
            customer = self.customers.get(parts[2])
            return (200, customer) if customer else (404, {"error": {"code": "BAD_REQUEST_ERROR",
                                                                     "description": "The id provided does not exist"}})
        if (method, path) == ("POST", "/v1/orders"):
            order = {"id": self._id("order"), "entity": "order", "amount": body["amount"],
                     "currency": body["currency"], "receipt": body.get("receipt"), "status": "created",
                     "customer_id": body.get("customer_id"), "token": body.get("token")}
            self.orders[order["id"]] = order
            return 200, order
        if (method, path) == ("GET", "/v1/orders"):
            receipt = request.url.params.get("receipt")
            items = [order for order in self.orders.values() if receipt is None or order["receipt"] == receipt]
            return 200, {"entity": "collection", "count": len(items), "items": items}
        if method == "GET" and parts[:2] == ["v1", "orders"] and parts[3:] == ["payments"]:
            items = [payment for payment in self.payments.values() if payment["order_id"] == parts[2]]
            return 200, {"entity": "collection", "count": len(items), "items": items}
        if method == "GET" and parts[:2] == ["v1", "payments"] and len(parts) == 3:
            payment = self.payments.get(parts[2])
            return (200, payment) if payment else (404, {"error": {"code": "BAD_REQUEST_ERROR",
                                                                   "description": "The id provided does not exist"}})
        if (method, path) == ("POST", "/v1/payments/create/recurring"):
            return self._recurring(body)
        if method == "POST" and parts[:2] == ["v1", "payments"] and parts[3:] == ["refund"]:
            return self._refund(parts[2], body, request.headers.get("x-refund-idempotency"))
        return 404, {"error": {"code": "BAD_REQUEST_ERROR", "description": f"no route {method} {path}"}}

    def _recurring(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(body.get("order_id"))
        if order is None or self.tokens.get(body.get("token")) != body.get("customer_id"):
            return self._error("The token or order is invalid")
        payment = {"id": self._id("pay"), "entity": "payment", "order_id": order["id"], "amount": body["amount"],
                   "currency": body["currency"], "status": "captured", "notes": body.get("notes") or {},
                   "amount_refunded": 0}
        self.payments[payment["id"]] = payment
        if body["token"].startswith(DECLINING_TOKEN_PREFIX):
            payment.update(status="failed", error_code="BAD_REQUEST_ERROR", error_reason="payment_failed",
                           error_description="Payment failed")
            return self._error("Payment failed", "payment_failed")
        order["status"] = "paid"
        return 200, {"razorpay_payment_id": payment["id"], "razorpay_order_id": order["id"]}

    def _refund(self, payment_id: str, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        if key and key in self.refund_keys:
            return 200, self.refunds[self.refund_keys[key]]
        payment = self.payments.get(payment_id)
        if payment is None or payment["status"] != "captured":
            return self._error("The payment is not refundable")
        amount = body.get("amount", payment["amount"] - payment["amount_refunded"])
        if amount > payment["amount"] - payment["amount_refunded"]:
            return self._error("The refund amount provided is greater than amount captured")
        payment["amount_refunded"] += amount
        refund = {"id": self._id("rfnd"), "entity": "refund", "payment_id": payment_id, "amount": amount,
                  "status": "processed"}
        self.refunds[refund["id"]] = refund
        if key:
            self.refund_keys[key] = refund["id"]
        return 200, refund

    def pay_in_checkout(self, order_id: str, *, network: str = "Visa", last4: str = "1111") -> str:
        """What Razorpay Checkout does in the browser when the customer pays ``order_id`` with a card:
        a captured payment, and, when the order asked for a token (``token`` and ``customer_id``), the
        card tokenised for the order's customer. The payment's id."""
        order = self.orders[order_id]
        payment = {"id": self._id("pay"), "entity": "payment", "order_id": order_id, "amount": order["amount"],
                   "currency": order["currency"], "status": "captured", "method": "card", "notes": {},
                   "amount_refunded": 0, "card": {"network": network, "last4": last4, "type": "credit"}}
        if order.get("token") and order.get("customer_id"):
            payment["token_id"] = self.save_token(order["customer_id"])
        self.payments[payment["id"]] = payment
        order["status"] = "paid"
        return payment["id"]

    def charges_with(self, key: str) -> int:
        return sum(1 for payment in self.payments.values() if payment["notes"].get("idempotency_key") == key)

    def refunded(self, payment_id: str) -> int:
        return self.payments[payment_id]["amount_refunded"]
