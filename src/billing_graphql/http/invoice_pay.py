"""GET /invoices/{id}/pay: the page where the customer confirms an invoice's Stripe payment that
needs action (3-D Secure, SCA) with Stripe.js (``stripe.confirmCardPayment(clientSecret)``).
``Invoice.paymentUrl`` points here. Authorized as the invoice's PDF (Bearer API key or session
token of the invoice's organization, or a super-admin); any other invoice is 404. Stripe's
``payment_intent.succeeded`` then pays the invoice (``POST /webhooks/stripe``)."""

from __future__ import annotations

import secrets
import uuid
from html import escape
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.http.access import app_db, organization_scope, request_now, require_actor
from billing_graphql.services.payments.payment_page import PaymentPage, load_payment_page

STRIPE_JS = "https://js.stripe.com/v3/"


def _headers(nonce: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src https://js.stripe.com 'nonce-{nonce}'; "
            "frame-src https://js.stripe.com https://hooks.stripe.com; connect-src https://api.stripe.com; "
            "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
    }


def render_payment_page(page: PaymentPage, nonce: str) -> str:
    title = f"Confirm the payment of invoice {page.invoice_number or page.invoice_id}"
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)}</title><script src=\"{STRIPE_JS}\"></script></head><body><main>"
        f"<h1>{escape(title)}</h1><p>Your bank asks you to confirm this payment of {escape(page.amount)}.</p>"
        f"<div id=\"pay\" data-publishable-key=\"{escape(page.publishable_key)}\""
        f" data-client-secret=\"{escape(page.client_secret)}\" data-payment-intent=\"{escape(page.payment_intent_id)}\">"
        "<button id=\"confirm\" type=\"button\">Confirm the payment</button></div><p id=\"result\" role=\"status\"></p>"
        f"<script nonce=\"{nonce}\">"
        "(function(){var el=document.getElementById('pay'),out=document.getElementById('result');"
        "var stripe=Stripe(el.dataset.publishableKey);"
        "document.getElementById('confirm').addEventListener('click',function(){"
        "stripe.confirmCardPayment(el.dataset.clientSecret).then(function(r){"
        "out.textContent=r.error?r.error.message:'Payment confirmed: the invoice is paid in a moment.';});});})();"
        "</script></main></body></html>"
    )


@get("/invoices/{filename:str}/pay", name="invoice_pay")
async def invoice_pay(request: Request[Any, Any, Any], filename: str) -> Response[str]:
    now = await request_now(request)
    actor = await require_actor(request, now)
    try:
        invoice_id = uuid.UUID(filename)
    except ValueError:
        raise NotFoundException(detail="Invoice not found.") from None
    try:
        page = await load_payment_page(app_db(request), request.app.state.gateways, invoice_id=invoice_id,
                                       organization_id=organization_scope(actor))
    except BillingError as exc:
        status = 502 if exc.code is BillingErrorCode.PAYMENT_FAILED else 404
        return Response(escape(exc.message), status_code=status, media_type=MediaType.TEXT)
    nonce = secrets.token_urlsafe(16)
    return Response(render_payment_page(page, nonce), media_type=MediaType.HTML, headers=_headers(nonce))
