"""The billing portal's forms: change plan (with the proration preview), replace the default
card, cancel at period end, resume. Rendered with Jinja2 (autoescaped); each POST carries a CSRF
token (an HMAC of the portal link under ``BILLING_PORTAL_SECRET``), is refused from another
origin, and calls the same service as the GraphQL mutation. Outcomes come back as a redirect to
the page with a fixed notice or error code, so nothing a request sends is reflected.

The body is read here, once, by ``read_form``: strict UTF-8, each field once, and every name and
value through the text rule of all input (``domain.text``, as GraphQL text input). A form that
breaks it answers the page again with a sentence (``error=text`` / ``error=form``) and runs nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response, post
from litestar.response import Redirect

from billing_graphql.domain.actors import Actor
from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.domain.money import Money
from billing_graphql.domain.roles import Role
from billing_graphql.domain.text import CARD_NUMBER_REFUSAL, forbidden_character, text_refusal
from billing_graphql.http.access import app_db, app_settings, request_now
from billing_graphql.services.billing.portal import PortalClaims, PortalTokenInvalid, read_portal_token
from billing_graphql.services.billing.portal_actions import load_manage_view, replace_default_card
from billing_graphql.services.subscriptions import lifecycle, plan_changes
from billing_graphql.settings import Settings

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
NOTICES = {
    "plan-changed": "Your plan has been changed.",
    "card-replaced": "Your default card has been replaced.",
    "cancel-scheduled": "Your subscription will end at the end of the period.",
    "resumed": "Your subscription will renew as usual.",
}
ERRORS = {
    "csrf": "This form has expired; please try again.",
    "text": "A field held characters that cannot be accepted (control characters, or text that is not UTF-8); "
            "please type it again.",
    "form": "This form could not be read; please fill it in again.",
    "card": "A field looked like a payment card number; never type one here: add a card through your "
            "payment processor and paste the token it gives you.",
    **{code.value: f"That could not be done ({code.value.replace('_', ' ').lower()})." for code in BillingErrorCode},
}


MAX_FORM_FIELDS = 16


class FormRefused(ValueError):
    """A form body that breaks the input rules; ``code`` is its key in ``ERRORS``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


FORMATTED_FORM_FIELDS = frozenset({"csrf", "idempotency_key", "plan_id"})  # an HMAC, a key, an id


def read_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body, each name once. Bytes that are
    not UTF-8 (an encoded lone surrogate included) or a control character in a name or value:
    ``FormRefused("text")``; a repeated name or more than ``MAX_FORM_FIELDS``: ``FormRefused("form")``."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=MAX_FORM_FIELDS, separator="&")
    except UnicodeDecodeError:
        raise FormRefused("text") from None
    except ValueError:  # too many fields
        raise FormRefused("form") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if forbidden_character(name) is not None or forbidden_character(value) is not None:
            raise FormRefused("text")
        # Free text (a label, a token someone may paste a card into) follows the card rule of all
        # input (``domain.text``); the fields with a format of their own do not.
        if text_refusal(value, free_text=name not in FORMATTED_FORM_FIELDS) == CARD_NUMBER_REFUSAL:
            raise FormRefused("card")
        if name in fields:
            raise FormRefused("form")
        fields[name] = value
    return fields


def csrf_token(settings: Settings, token: str) -> str:
    return hmac.new((settings.portal_secret or "").encode(), b"portal-csrf|" + token.encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """Refuse what the browser says came from another site. (The page is sent with
    ``Referrer-Policy: no-referrer``, so the browser's own form posts carry ``Origin: null``.)"""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


@dataclass(frozen=True, slots=True)
class PreviewView:
    plan_id: str
    plan_name: str
    lines: list[dict[str, str]]
    tax: str
    amount_due: str
    credit_added: str | None
    message: str | None
    idempotency_key: str


async def manage_html(request: Request[Any, Any, Any], token: str, claims: PortalClaims, *,
                      preview: PreviewView | None = None) -> str:
    view = await load_manage_view(app_db(request), claims.organization_id)
    return _TEMPLATES.get_template("portal_manage.html").render(
        base=f"/portal/{token}", csrf=csrf_token(app_settings(request), token), subscription=view.subscription,
        plans=view.plans, preview=preview, notice=NOTICES.get(request.query_params.get("notice", "")),
        error=ERRORS.get(request.query_params.get("error", "")),
    )


def _actor(claims: PortalClaims) -> Actor:
    return Actor(role=Role.ADMIN, organization_id=claims.organization_id, subject="portal")


def _back(token: str, **outcome: str) -> Redirect:
    query = "&".join(f"{key}={value}" for key, value in outcome.items())
    return Redirect(path=f"/portal/{token}?{query}#manage", status_code=303)


def _plan_id(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BillingError(BillingErrorCode.PLAN_NOT_FOUND, "Plan not found.", field="planId") from None


@post("/portal/{token:str}/actions/{action:str}", name="billing_portal_action", media_type=MediaType.HTML,
      status_code=200)
async def billing_portal_action(request: Request[Any, Any, Any], token: str, action: str) -> Response[str] | Redirect:
    from billing_graphql.http.portal import SECURITY_HEADERS, forbidden, portal_page

    settings = app_settings(request)
    now = await request_now(request)
    try:
        claims = read_portal_token(token, settings=settings, now=now)
    except PortalTokenInvalid as exc:
        return forbidden(str(exc))
    try:
        data = read_form(await request.body())
    except FormRefused as refused:
        return _back(token, error=refused.code)
    expected = csrf_token(settings, token)
    if not _same_origin(request) or not hmac.compare_digest(data.get("csrf", "").encode(), expected.encode()):
        return _back(token, error="csrf")
    db, actor = app_db(request), _actor(claims)
    organization_id = claims.organization_id
    try:
        if action == "preview-plan":
            plan_id = _plan_id(data.get("plan_id"))
            result = await plan_changes.change_plan(db, actor, organization_id=organization_id, plan_id=plan_id,
                                                    billing_period=None, dry_run=True, gateways=request.app.state.gateways, now=now)
            preview = _preview_view(result, plan_id, await _plan_name(request, organization_id, plan_id))
            html = await portal_page(request, token, claims, preview=preview)
            return Response(html, status_code=200, media_type=MediaType.HTML, headers=SECURITY_HEADERS)
        if action == "change-plan":
            await plan_changes.change_plan(
                db, actor, organization_id=organization_id, plan_id=_plan_id(data.get("plan_id")),
                billing_period=None, idempotency_key=(data.get("idempotency_key") or None),
                gateways=request.app.state.gateways, now=now)
            return _back(token, notice="plan-changed")
        if action == "replace-card":
            await replace_default_card(db, request.app.state.gateways, actor, token=data.get("token", ""),
                                       label=data.get("label", ""), now=now)
            return _back(token, notice="card-replaced")
        if action == "cancel":
            await lifecycle.cancel(db, actor, organization_id=organization_id, immediately=False,
                                   reason="billing portal", now=now)
            return _back(token, notice="cancel-scheduled")
        if action == "resume":
            await lifecycle.resume(db, actor, organization_id=organization_id, now=now)
            return _back(token, notice="resumed")
    except BillingError as error:
        return _back(token, error=error.code.value)
    return _back(token, error=BillingErrorCode.NOT_FOUND.value)


async def _plan_name(request: Request[Any, Any, Any], organization_id: uuid.UUID, plan_id: uuid.UUID) -> str:
    view = await load_manage_view(app_db(request), organization_id)
    return next((plan["name"] for plan in view.plans if plan["id"] == str(plan_id)), "the new plan")


def _preview_view(result: Any, plan_id: uuid.UUID, plan_name: str) -> PreviewView | None:
    preview = result.preview
    if preview is None:
        return None
    currency = preview.currency
    return PreviewView(
        plan_id=str(plan_id),
        plan_name=plan_name,
        lines=[{"description": line.description, "amount": Money(line.amount, currency).format()}
               for line in preview.lines],
        tax=Money(preview.tax, currency).format(),
        amount_due=Money(preview.amount_due, currency).format(),
        credit_added=Money(preview.credit_added, currency).format() if preview.credit_added else None,
        message=preview.message,
        idempotency_key=uuid.uuid4().hex,
    )


