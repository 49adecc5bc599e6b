"""The portal's pages (GET): each opens the link, loads the organization's state once
(``services.portal.pages``), builds its view model and renders its template."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.roles import Role
from billing_graphql.http.invoice_pdf import (
    CREDIT_NOTE_NOT_FOUND,
    NOT_FOUND,
    parse_pdf_name,
    pdf_response,
    rendered_pdf,
)
from billing_graphql.http.portal import views
from billing_graphql.http.portal.common import (
    RAZORPAY_CHECKOUT_JS,
    Portal,
    card_form_policy,
    forbidden,
    open_portal,
)
from billing_graphql.http.portal.forms import signature
from billing_graphql.services.billing.credit_note_documents import load_credit_note_document, render_credit_note_pdf
from billing_graphql.services.billing.invoice_documents import load_invoice_document
from billing_graphql.services.portal.cards import card_form, card_processor
from billing_graphql.services.portal.pages import PortalData, PortalOrganizationGone, load_portal_data
from billing_graphql.services.portal.sessions import PortalTokenInvalid

COUNTRIES = [("ID", "Indonesia"), ("SG", "Singapore"), ("MY", "Malaysia"), ("TH", "Thailand"), ("PH", "Philippines"),
             ("VN", "Vietnam"), ("AU", "Australia"), ("IN", "India"), ("JP", "Japan"), ("US", "United States"),
             ("GB", "United Kingdom"), ("NL", "Netherlands"), ("DE", "Germany")]
CANCEL_REASONS = ["too_expensive", "missing_features", "switched_service", "unused", "other"]


def portal_actor(portal: Portal) -> Actor:
    """Who acts through the link: the owner or admin who asked for it, named in the audit log as the portal."""
    return Actor(role=portal.claims.role, organization_id=portal.claims.organization_id, subject="portal",
                 api_key_id=portal.claims.api_key_id)


async def load(portal: Portal) -> tuple[PortalData, views.Header]:
    try:
        data = await load_portal_data(portal.db, portal.claims.organization_id, portal.now)
    except PortalOrganizationGone:
        raise PortalTokenInvalid("This billing portal link is not valid.") from None
    header = views.Header(organization_name=data.organization.name, return_url=portal.claims.return_url,
                          expires_at=portal.claims.expires_at)
    return data, header


async def _page(request: Request[Any, Any, Any], token: str, build) -> Response[str]:
    try:
        portal = await open_portal(request, token)
        return await build(portal)
    except PortalTokenInvalid as problem:
        return forbidden(request, problem)


@get("/portal/{token:str}", name="billing_portal", media_type=MediaType.HTML)
async def overview(request: Request[Any, Any, Any], token: str) -> Response[str]:
    async def build(portal: Portal) -> Response[str]:
        data, header = await load(portal)
        return portal.render("overview.html", views.overview_page(data, header))
    return await _page(request, token, build)


async def render_plan_page(portal: Portal, preview: views.PreviewView | None = None) -> Response[str]:
    data, header = await load(portal)
    return portal.render("plan.html", views.plan_page(data, header, preview))


@get("/portal/{token:str}/plan", name="billing_portal_plan", media_type=MediaType.HTML)
async def plan(request: Request[Any, Any, Any], token: str) -> Response[str]:
    return await _page(request, token, render_plan_page)


@get("/portal/{token:str}/cards", name="billing_portal_cards", media_type=MediaType.HTML)
async def cards(request: Request[Any, Any, Any], token: str) -> Response[str]:
    async def build(portal: Portal) -> Response[str]:
        data, header = await load(portal)
        default = data.default_method
        processor = card_processor(portal.settings, default.gateway if default is not None else None)
        form = await card_form(portal.db, portal.gateways, portal_actor(portal), processor)
        nonce = secrets.token_urlsafe(16)
        script = {"stripe": portal.settings.stripe_js_url, "razorpay": RAZORPAY_CHECKOUT_JS}.get(processor)
        quote = signature(portal.settings, "razorpay-order", portal.token, form.razorpay.order_id) \
            if form.razorpay is not None else None
        page = views.CardsPage(header=header, cards=[views.card_view(method) for method in data.payment_methods],
                               form=form, open_due=sum(due for _, due in data.open_invoices), currency=data.currency,
                               script_url=script if not form.problem else None, nonce=nonce, order_quote=quote)
        return portal.render("cards.html", page, headers=card_form_policy(processor, portal.settings, nonce))
    return await _page(request, token, build)


@get("/portal/{token:str}/invoices", name="billing_portal_invoices", media_type=MediaType.HTML)
async def invoices(request: Request[Any, Any, Any], token: str) -> Response[str]:
    async def build(portal: Portal) -> Response[str]:
        data, header = await load(portal)
        return portal.render("invoices.html", views.invoices_page(data, header))
    return await _page(request, token, build)


@get("/portal/{token:str}/details", name="billing_portal_details", media_type=MediaType.HTML)
async def details(request: Request[Any, Any, Any], token: str) -> Response[str]:
    async def build(portal: Portal) -> Response[str]:
        data, header = await load(portal)
        return portal.render("details.html", views.DetailsPage(header=header, details=data.billing_details,
                                                                countries=COUNTRIES,
                                                                editable=portal.claims.role is Role.OWNER))
    return await _page(request, token, build)


@get("/portal/{token:str}/cancel", name="billing_portal_cancel", media_type=MediaType.HTML)
async def cancel(request: Request[Any, Any, Any], token: str) -> Response[str]:
    async def build(portal: Portal) -> Response[str]:
        data, header = await load(portal)
        return portal.render("cancel.html", views.CancelPage(header=header, subscription=views.SubscriptionView.of(data),
                                                              reasons=CANCEL_REASONS))
    return await _page(request, token, build)


@get("/portal/{token:str}/invoices/{filename:str}", name="billing_portal_invoice_pdf")
async def invoice_pdf(request: Request[Any, Any, Any], token: str, filename: str) -> Response:
    try:
        portal = await open_portal(request, token)
    except PortalTokenInvalid as problem:
        return forbidden(request, problem)
    invoice_id = parse_pdf_name(filename)
    try:
        document = await load_invoice_document(portal.db, invoice_id=invoice_id,
                                               organization_id=portal.claims.organization_id)
    except BillingError:
        raise NotFoundException(detail=NOT_FOUND) from None
    if document.invoice.number is None:  # drafts are not the customer's yet
        raise NotFoundException(detail=NOT_FOUND)
    response = await pdf_response(request, document)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@get("/portal/{token:str}/credit-notes/{filename:str}", name="billing_portal_credit_note_pdf")
async def credit_note_pdf(request: Request[Any, Any, Any], token: str, filename: str) -> Response:
    """A credit note's PDF for the link's organization (as GET /credit-notes/{id}.pdf)."""
    try:
        portal = await open_portal(request, token)
    except PortalTokenInvalid as problem:
        return forbidden(request, problem)
    credit_note_id = parse_pdf_name(filename, not_found=CREDIT_NOTE_NOT_FOUND)
    try:
        document = await load_credit_note_document(portal.db, credit_note_id=credit_note_id,
                                                   organization_id=portal.claims.organization_id)
    except BillingError:
        raise NotFoundException(detail=CREDIT_NOTE_NOT_FOUND) from None
    response = await rendered_pdf(request, render_credit_note_pdf, document, document.number)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


PAGES = [overview, plan, cards, invoices, details, cancel, invoice_pdf, credit_note_pdf]
