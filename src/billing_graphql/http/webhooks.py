"""POST /webhooks/{gateway}: processors' events, signature-checked over the raw body.

- ``razorpay``: ``X-Razorpay-Signature`` (hex HMAC-SHA256 of the body with
  BILLING_RAZORPAY_WEBHOOK_SECRET); the event id is ``X-Razorpay-Event-Id`` (or, when absent,
  a hash of the body). Razorpay's scheme has no timestamp.
- ``stripe``: ``Stripe-Signature`` checked by ``stripe.Webhook.construct_event`` with
  BILLING_STRIPE_WEBHOOK_SECRET (timestamps at most 300 s old); the event id is the event's ``id``.
  An event type the gateway does not handle is a 400 too.
- ``sandbox``: Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
  with BILLING_SANDBOX_WEBHOOK_SECRET, timestamps at most 300 s off.

Answers: 404 for an unknown gateway, 503 when its secret is not configured, 400 for a missing
or wrong signature, an event id with a control character, or a body that breaks the rules of
``http.inbound_json`` (UTF-8 JSON, at most 32 levels deep, no control characters or lone
surrogates, numbers within 64 bits) or is not an event (nothing written; the ``detail`` says
why), otherwise 200, also for a repeated event (``duplicate: true``; nothing changes the second
time). A gateway added to ``VERIFIERS`` gets the same reading of its bodies.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, post

from billing_graphql.gateways.razorpay import verify_webhook_signature
from billing_graphql.gateways.sandbox import verify_standard_webhook
from billing_graphql.domain.text import forbidden_character
from billing_graphql.http.access import app_db, app_settings, request_now
from billing_graphql.http.inbound_json import BodyRefused, read_json_body
from billing_graphql.services.payments.gateway_webhooks import (
    InboundEvent,
    InvalidEvent,
    apply_gateway_event,
    parse_razorpay,
    parse_sandbox,
    parse_stripe,
)
from billing_graphql.settings import Settings

MAX_EVENT_ID = 200
STRIPE_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,190}$")


def _answer(status: int, detail: str) -> Response[dict[str, Any]]:
    return Response({"status_code": status, "detail": detail}, status_code=status)


@dataclass(frozen=True, slots=True)
class Verified:
    """A delivery's verdict: refused (``status`` and ``detail``) or its event id and body parser."""

    status: int = 200
    detail: str = ""
    event_id: str | None = None
    parse: Callable[[Any, str], InboundEvent] | None = None


def _razorpay(settings: Settings, body: bytes, headers: dict[str, str]) -> Verified:
    if not settings.razorpay_webhook_secret:
        return Verified(503, "Razorpay webhooks are not configured (BILLING_RAZORPAY_WEBHOOK_SECRET).")
    signature = headers.get("x-razorpay-signature")
    if not signature:
        return Verified(400, "Missing X-Razorpay-Signature header.")
    if not verify_webhook_signature(body, signature, settings.razorpay_webhook_secret):
        return Verified(400, "Invalid X-Razorpay-Signature.")
    event_id = headers.get("x-razorpay-event-id") or "sha256:" + hashlib.sha256(body).hexdigest()
    return Verified(event_id=event_id, parse=parse_razorpay)


def _sandbox(settings: Settings, body: bytes, headers: dict[str, str]) -> Verified:
    if not settings.sandbox_webhook_secret:
        return Verified(503, "Sandbox webhooks are not configured (BILLING_SANDBOX_WEBHOOK_SECRET).")
    event_id = verify_standard_webhook(settings.sandbox_webhook_secret, body, headers)
    if event_id is None:
        return Verified(400, "Missing or invalid webhook signature (or a timestamp more than 300 s off).")
    return Verified(event_id=event_id, parse=parse_sandbox)


def _stripe(settings: Settings, body: bytes, headers: dict[str, str]) -> Verified:
    import stripe

    from billing_graphql.gateways.stripe import construct_event

    if not settings.stripe_webhook_secret:
        return Verified(503, "Stripe webhooks are not configured (BILLING_STRIPE_WEBHOOK_SECRET).")
    if not headers.get("stripe-signature"):
        return Verified(400, "Missing Stripe-Signature header.")
    try:
        event = construct_event(body, headers["stripe-signature"], settings.stripe_webhook_secret)
    except stripe.SignatureVerificationError as exc:
        reason = "a timestamp more than 300 s old" if "tolerance" in str(exc) else "a wrong signature"
        return Verified(400, f"Invalid Stripe-Signature ({reason}).")
    except (ValueError, RecursionError, TypeError, AttributeError, KeyError):
        # construct_event parses with json.loads; the shared reading (read_json_body) says why.
        try:
            read_json_body(body)
        except BodyRefused as exc:
            return Verified(400, str(exc))
        return Verified(400, "The body is not a Stripe event.")
    event_id = getattr(event, "id", None)
    if not isinstance(event_id, str) or not STRIPE_EVENT_ID.match(event_id):
        return Verified(400, "The Stripe event has no valid id.")
    return Verified(event_id=event_id, parse=parse_stripe)


VERIFIERS = {"razorpay": _razorpay, "sandbox": _sandbox, "stripe": _stripe}


@post("/webhooks/{gateway:str}", name="gateway_webhook", opt={"exclude_from_rate_limit": True})
async def gateway_webhook(request: Request[Any, Any, Any], gateway: str) -> Response[dict[str, Any]]:
    verifier = VERIFIERS.get(gateway)
    if verifier is None:
        return _answer(404, f"No gateway {gateway[:40]!r}; known: {', '.join(sorted(VERIFIERS))}.")
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    verified = verifier(app_settings(request), body, headers)
    if verified.parse is None:
        return _answer(verified.status, verified.detail)
    event_id = verified.event_id
    if not event_id or len(event_id) > MAX_EVENT_ID or forbidden_character(event_id) is not None:
        return _answer(400, "The event id is missing, too long or holds a control character.")
    try:
        event = verified.parse(read_json_body(body), event_id)
    except (BodyRefused, InvalidEvent) as exc:
        return _answer(400, str(exc))
    if gateway == "stripe":
        from billing_graphql.gateways.base import GatewayError
        from billing_graphql.services.payments.stripe_methods import apply_stripe_event

        try:
            applied = await apply_stripe_event(app_db(request), request.app.state.gateways, event,
                                               await request_now(request))
        except GatewayError:
            return _answer(503, "Stripe could not be asked about this event's objects; deliver it again later.")
    else:
        applied = await apply_gateway_event(app_db(request), event, await request_now(request))
    return Response({"received": True, "duplicate": applied.duplicate, "result": applied.result}, status_code=200)
