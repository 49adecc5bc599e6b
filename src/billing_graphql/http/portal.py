"""GET /portal/{token}: the billing portal page; GET /portal/{token}/invoices/{id}.pdf.

Everything shown is HTML-escaped. An invalid or expired link gets a 403 page saying so.
The token is in the URL, so pages are never cached and never sent on as a referrer.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException

from billing_graphql.db.models import Invoice, PaymentMethod
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.money import Money
from billing_graphql.domain.status import SubscriptionStatus
from billing_graphql.http.access import app_db, app_settings, request_now
from billing_graphql.http.invoice_pdf import NOT_FOUND, parse_pdf_name, pdf_response
from billing_graphql.services.billing.invoice_documents import load_invoice_document
from billing_graphql.services.billing.portal import (
    PortalClaims,
    PortalSubscription,
    PortalTokenInvalid,
    PortalView,
    load_portal_view,
    read_portal_token,
)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1a1a1a}
main{max-width:860px;margin:2rem auto;padding:0 1rem}
section{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:0}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:.4rem .3rem;border-bottom:1px solid #eee}
td.num{text-align:right}.badge{background:#e8f0fe;border-radius:4px;padding:0 .4rem;font-size:.85em}
.muted{color:#666}a{color:#0b57d0}form{margin:.6rem 0}.notice{color:#137333}.error{color:#b3261e}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def _subscription_html(subscription: PortalSubscription | None) -> str:
    if subscription is None:
        return "<section><h2>Subscription</h2><p class=\"muted\">No active subscription.</p></section>"
    ends = "Ends on" if subscription.cancel_at_period_end else "Renews on"
    rows = [
        ("Plan", subscription.plan_name),
        ("Status", subscription.status.value),
        ("Billing period", subscription.billing_period),
        (ends, _day(subscription.current_period_end)),
    ]
    if subscription.trial_ends_at and subscription.status is SubscriptionStatus.TRIALING:
        rows.append(("Trial ends", _day(subscription.trial_ends_at)))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<section><h2>Subscription</h2><table>{cells}</table></section>"


def _invoices_html(token: str, invoices: list[Invoice]) -> str:
    if not invoices:
        return "<section><h2>Invoices</h2><p class=\"muted\">No invoices yet.</p></section>"
    rows = []
    for invoice in invoices:
        href = f"/portal/{token}/invoices/{invoice.id}.pdf"
        rows.append(
            "<tr>"
            f"<td>{escape(invoice.number or '')}</td>"
            f"<td>{escape(_day(invoice.finalized_at or invoice.created_at))}</td>"
            f"<td class=\"num\">{escape(Money(invoice.total, invoice.currency).format())}</td>"
            f"<td>{escape(invoice.status.value)}</td>"
            f"<td><a href=\"{escape(href, quote=True)}\">PDF</a></td>"
            "</tr>"
        )
    head = "<tr><th>Number</th><th>Date</th><th class=\"num\">Total</th><th>Status</th><th></th></tr>"
    return f"<section><h2>Invoices</h2><table>{head}{''.join(rows)}</table></section>"


def _methods_html(methods: list[PaymentMethod]) -> str:
    if not methods:
        return "<section><h2>Payment methods</h2><p class=\"muted\">No payment methods saved.</p></section>"
    rows = []
    for method in methods:
        name = method.label or method.type.value.replace("_", " ").title()
        details = " ".join(part for part in (method.brand, f"•••• {method.last4}" if method.last4 else None) if part)
        expiry = f"{method.exp_month:02d}/{method.exp_year}" if method.exp_month and method.exp_year else ""
        badge = " <span class=\"badge\">Default</span>" if method.is_default else ""
        rows.append(
            f"<tr><td>{escape(name)}{badge}</td><td>{escape(details)}</td><td>{escape(expiry)}</td></tr>"
        )
    return f"<section><h2>Payment methods</h2><table>{''.join(rows)}</table></section>"


def portal_html(token: str, claims: PortalClaims, view: PortalView, manage: str = "") -> str:
    body = (
        f"<h1>Billing for {escape(view.organization_name)}</h1>"
        f"<p><a href=\"{escape(claims.return_url, quote=True)}\">&larr; Back</a></p>"
        + _subscription_html(view.subscription)
        + manage
        + _invoices_html(token, view.invoices)
        + _methods_html(view.payment_methods)
        + f"<p class=\"muted\">This link expires at {escape(claims.expires_at.strftime('%Y-%m-%d %H:%M'))} UTC.</p>"
    )
    return _page(f"Billing - {view.organization_name}", body)


def forbidden(message: str) -> Response[str]:
    body = (
        "<h1>Billing portal</h1><section>"
        f"<p>{escape(message)}</p>"
        "<p>Go back to the application and open the billing portal again to get a new link.</p>"
        "</section>"
    )
    return Response(
        _page("Billing portal link not valid", body),
        status_code=403,
        media_type=MediaType.HTML,
        headers=SECURITY_HEADERS,
    )


async def _claims(request: Request[Any, Any, Any], token: str) -> PortalClaims:
    return read_portal_token(token, settings=app_settings(request), now=await request_now(request))


async def portal_page(request: Request[Any, Any, Any], token: str, claims: PortalClaims, **manage: Any) -> str:
    """The page with its forms (``manage``: a plan-change preview to show)."""
    from billing_graphql.http.portal_forms import manage_html

    view = await load_portal_view(app_db(request), claims.organization_id)
    return portal_html(token, claims, view, await manage_html(request, token, claims, **manage))


@get("/portal/{token:str}", name="billing_portal", media_type=MediaType.HTML)
async def billing_portal(request: Request[Any, Any, Any], token: str) -> Response[str]:
    try:
        claims = await _claims(request, token)
        html = await portal_page(request, token, claims)
    except PortalTokenInvalid as exc:
        return forbidden(str(exc))
    return Response(html, media_type=MediaType.HTML, headers=SECURITY_HEADERS)


@get("/portal/{token:str}/invoices/{filename:str}", name="billing_portal_invoice_pdf")
async def billing_portal_invoice_pdf(request: Request[Any, Any, Any], token: str, filename: str) -> Response:
    try:
        claims = await _claims(request, token)
    except PortalTokenInvalid as exc:
        return forbidden(str(exc))
    invoice_id = parse_pdf_name(filename)
    try:
        document = await load_invoice_document(
            app_db(request), invoice_id=invoice_id, organization_id=claims.organization_id
        )
    except BillingError:
        raise NotFoundException(detail=NOT_FOUND) from None
    if document.invoice.number is None:  # drafts are not the customer's yet
        raise NotFoundException(detail=NOT_FOUND)
    response = await pdf_response(request, document)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
