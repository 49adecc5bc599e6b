"""What every portal page and action shares: opening the link, the language, rendering a
template with the page's view model, the outcome redirect and the security headers.

The token is in the URL, so pages are never cached and never sent on as a referrer. Everything
shown is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response
from litestar.response import Redirect

from billing_graphql.db.engine import Database
from billing_graphql.gateways import GatewayRegistry
from billing_graphql.http.access import app_db, app_settings, request_now
from billing_graphql.http.portal.forms import csrf_token
from billing_graphql.http.portal.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGE_NAMES,
    LANGUAGES,
    Formats,
    choose_language,
    translations,
)
from billing_graphql.http.portal.messages import ERRORS, NOTICES
from billing_graphql.services.portal.pages import documents_language
from billing_graphql.services.portal.sessions import PortalClaims, PortalTokenInvalid, open_portal_session
from billing_graphql.settings import Settings

_POLICY = {
    "default-src": "'none'",
    "style-src": "'unsafe-inline'",
    # script and connect: the usage bars' own script (http/portal/live.py) and its WebSocket
    "script-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
}


def _policy(directives: dict[str, str]) -> str:
    """The portal's Content-Security-Policy with ``directives`` in place of its own (a browser
    reads only the first of two equal directives, so they are replaced, never appended)."""
    return "; ".join(f"{name} {sources}" for name, sources in {**_POLICY, **directives}.items())


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": _policy({}),
}
TEMPLATES = Path(__file__).parent / "templates"
RAZORPAY_CHECKOUT_JS = "https://checkout.razorpay.com/v1/checkout.js"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def card_form_policy(processor: str, settings: Settings, nonce: str) -> dict[str, str]:
    """The cards page's Content-Security-Policy where a processor's own form runs: its script (and
    the page's, by nonce), its frames and the API its script calls, as Stripe and Razorpay list them."""
    if processor == "stripe":
        js = _origin(settings.stripe_js_url)
        directives = {"script-src": f"{js} 'nonce-{nonce}'", "frame-src": f"{js} https://hooks.stripe.com",
                      "connect-src": f"{_origin(settings.stripe_api_base)} {js}"}
    elif processor == "razorpay":
        directives = {"script-src": f"https://checkout.razorpay.com 'nonce-{nonce}'",
                      "frame-src": "https://api.razorpay.com https://checkout.razorpay.com",
                      "connect-src": "https://api.razorpay.com https://checkout.razorpay.com "
                                     "https://lumberjack.razorpay.com",
                      "img-src": "https://cdn.razorpay.com"}
    else:
        return {}
    return {"Content-Security-Policy": _policy(directives)}


@cache
def environment(language: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True,
                      default_for_string=True), extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass(frozen=True, slots=True)
class Portal:
    """One request to the portal: its link, language and what the services need."""

    request: Request[Any, Any, Any]
    token: str
    claims: PortalClaims
    language: str
    explicit_language: bool
    now: datetime

    @property
    def db(self) -> Database:
        return app_db(self.request)

    @property
    def settings(self) -> Settings:
        return app_settings(self.request)

    @property
    def gateways(self) -> GatewayRegistry:
        return self.request.app.state.gateways

    @property
    def base(self) -> str:
        return f"/portal/{self.token}"

    def link(self, path: str = "", **query: str) -> str:
        """A link inside the portal, keeping the language chosen with ``?lang=``."""
        if self.explicit_language:
            query = {"lang": self.language, **query}
        return f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")

    def gettext(self, message: str) -> str:
        return translations(self.language).gettext(message)

    def render(self, template: str, view: Any, *, status_code: int = 200,
               headers: dict[str, str] | None = None) -> Response[str]:
        query = self.request.query_params
        notice, error = NOTICES.get(query.get("notice", "")), ERRORS.get(query.get("error", ""))
        html = environment(self.language).get_template(template).render(
            view=view, portal=self, fmt=Formats(self.language), csrf=csrf_token(self.settings, self.token),
            notice=self.gettext(notice) if notice else None, error=self.gettext(error) if error else None,
            languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        )
        return Response(html, status_code=status_code, media_type=MediaType.HTML,
                        headers={**SECURITY_HEADERS, **(headers or {})})

    def back(self, path: str = "", **outcome: str) -> Redirect:
        """The outcome of an action: the page again, with a notice or an error key."""
        return Redirect(path=self.link(path, **outcome), status_code=303)


def language_of(request: Request[Any, Any, Any], fallback: str | None = DEFAULT_LANGUAGE) -> tuple[str | None, bool]:
    requested = request.query_params.get("lang")
    return (choose_language(requested, request.headers.get("accept-language"), fallback),
            requested in LANGUAGES)


async def open_portal(request: Request[Any, Any, Any], token: str) -> Portal:
    """The portal request behind ``token``; PortalTokenInvalid when the link is not (or no longer) valid.

    Its language: ``?lang=``, else the browser's Accept-Language, else the organization's documents'
    language (``BillingDetails.language``)."""
    now = await request_now(request)
    claims = await open_portal_session(app_db(request), token, settings=app_settings(request), now=now)
    language, explicit = language_of(request, fallback=None)
    if language is None:
        language = await documents_language(app_db(request), claims.organization_id)
    return Portal(request=request, token=token, claims=claims, language=language, explicit_language=explicit,
                  now=now)


def forbidden(request: Request[Any, Any, Any], problem: PortalTokenInvalid) -> Response[str]:
    language, _ = language_of(request)
    html = environment(language).get_template("forbidden.html").render(
        message=translations(language).gettext(str(problem)), fmt=Formats(language), portal=None)
    return Response(html, status_code=403, media_type=MediaType.HTML, headers=SECURITY_HEADERS)
