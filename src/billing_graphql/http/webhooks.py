"""POST /webhooks/razorpay: Razorpay's events, signature-checked over the raw body.

400 without a signature or with a body that is not an event, 401 with a wrong signature,
503 when no webhook secret is configured; otherwise the event goes to the outbox as
``gateway.razorpay.<event>`` and the answer is 200 (also for a repeated delivery).
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, post

from billing_graphql.domain.errors import BillingError
from billing_graphql.gateways.razorpay import verify_webhook_signature
from billing_graphql.http.access import app_db, app_settings, request_now
from billing_graphql.services.payments.gateway_webhooks import EVENT_NAME, MAX_EVENT_NAME, record_gateway_event


def _answer(status: int, detail: str) -> Response[dict[str, Any]]:
    return Response({"status_code": status, "detail": detail}, status_code=status)


@post("/webhooks/razorpay", name="razorpay_webhook", opt={"exclude_from_rate_limit": True})
async def razorpay_webhook(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    secret = app_settings(request).razorpay_webhook_secret
    if not secret:
        return _answer(503, "Razorpay webhooks are not configured (BILLING_RAZORPAY_WEBHOOK_SECRET).")
    signature = request.headers.get("x-razorpay-signature")
    if not signature:
        return _answer(400, "Missing X-Razorpay-Signature header.")
    body = await request.body()
    if not verify_webhook_signature(body, signature, secret):
        return _answer(401, "Invalid X-Razorpay-Signature.")
    try:
        payload = json.loads(body)
    except ValueError:
        return _answer(400, "The body is not JSON.")
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, str) or len(event) > MAX_EVENT_NAME or not EVENT_NAME.match(event):
        return _answer(400, "The body has no valid 'event'.")
    try:
        recorded = await record_gateway_event(
            app_db(request),
            gateway="razorpay",
            event=event,
            payload=payload,
            event_id=request.headers.get("x-razorpay-event-id"),
            now=await request_now(request),
        )
    except BillingError:  # the event id was seen with another event name
        return _answer(409, "This event id was already delivered with another event.")
    return Response({"received": True, "duplicate": not recorded}, status_code=200)
