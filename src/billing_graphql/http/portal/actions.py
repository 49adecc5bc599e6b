"""The portal's actions (POST ``/portal/{token}/actions/<name>``), one handler each.

``portal_action`` does what every form shares: the link is opened (403 page when it is not
valid), the body read with the shared input rules (``forms.read_form``), the CSRF token and the
origin checked. A handler then calls the same service the GraphQL mutation calls and renders: a
preview page, or a redirect to a page with a notice, or with the sentence of the refusal.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from litestar import MediaType, Request, Response, post
from litestar.response import Redirect

from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.periods import BillingPeriod
from billing_graphql.domain.proration import Effective
from billing_graphql.domain.roles import Role
from billing_graphql.http.portal import views
from billing_graphql.http.portal.common import Portal, forbidden, open_portal
from billing_graphql.http.portal.forms import FormRefused, csrf_token, read_form, same_origin, signature
from billing_graphql.http.portal.messages import error_key
from billing_graphql.http.portal.pages import load, portal_actor, render_plan_page
from billing_graphql.services.billing.invoice_payments import pay_invoice
from billing_graphql.services.payments.payment_methods import remove_payment_method
from billing_graphql.services.platform.billing_details import update_billing_details
from billing_graphql.services.portal import cards
from billing_graphql.services.portal.sessions import PortalTokenInvalid
from billing_graphql.services.subscriptions import lifecycle, plan_changes

Handler = Callable[[Portal, dict[str, str]], Awaitable[Response[str] | Redirect]]
# Where each action's outcome is shown.
PAGE_OF = {"preview-plan": "/plan", "change-plan": "/plan", "preview-addon": "/plan", "change-addon": "/plan",
           "apply-coupon": "/plan", "cancel": "/cancel", "resume": "", "add-card": "/cards",
           "add-stripe-card": "/cards", "add-razorpay-card": "/cards", "replace-card": "",
           "default-card": "/cards", "remove-card": "/cards", "pay-invoice": "", "update-details": "/details"}


def portal_action(name: str) -> Callable[[Handler], Any]:
    def register(handler: Handler) -> Any:
        async def route(request: Request[Any, Any, Any], token: str) -> Response[str] | Redirect:
            try:
                portal = await open_portal(request, token)
            except PortalTokenInvalid as problem:
                return forbidden(request, problem)
            page = PAGE_OF[name]
            try:
                form = read_form(await request.body())
            except FormRefused as refused:
                return portal.back(page, error=refused.code)
            expected = csrf_token(portal.settings, token)
            if not same_origin(request) or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
                return portal.back(page, error="csrf")
            try:
                return await handler(portal, form)
            except BillingError as error:
                return portal.back(page, error=error_key(error))

        route.__name__ = route.__qualname__ = f"portal_{name.replace('-', '_')}"
        return post(f"/portal/{{token:str}}/actions/{name}", name=f"billing_portal_action_{name.replace('-', '_')}",
                    media_type=MediaType.HTML, status_code=200)(route)
    return register


def _uuid(value: str | None, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        from billing_graphql.domain.errors import not_found

        raise not_found("Item", field) from None


def _period(value: str | None) -> BillingPeriod | None:
    return BillingPeriod(value) if value in ("MONTHLY", "ANNUAL") else None


def _quote(portal: Portal, *parts: str) -> str:
    return signature(portal.settings, "portal-quote", portal.token, *parts)


def _quoted_at(portal: Portal, form: dict[str, str], *parts: str) -> datetime:
    """The preview's instant a confirmation carries, signed with the preview it confirms."""
    quoted_at = form.get("quoted_at", "")
    if not hmac.compare_digest(form.get("quote", "").encode(), _quote(portal, *parts, quoted_at).encode()):
        from billing_graphql.domain.errors import validation

        raise validation("This preview is not valid; preview the change again.", "prorationDate")
    return datetime.fromisoformat(quoted_at).astimezone(UTC)


def _instant(portal: Portal) -> str:
    return portal.now.isoformat()


@portal_action("preview-plan")
async def preview_plan(portal: Portal, form: dict[str, str]) -> Response[str]:
    plan_id, period = _uuid(form.get("plan_id"), "planId"), _period(form.get("period"))
    quoted_at = _instant(portal)
    result = await plan_changes.change_plan(
        portal.db, portal_actor(portal), organization_id=portal.claims.organization_id, plan_id=plan_id,
        billing_period=period, dry_run=True, proration_date=datetime.fromisoformat(quoted_at),
        gateways=portal.gateways, now=portal.now)
    data, _ = await load(portal)
    plan_name = next((plan.name for plan in data.plans if plan.id == plan_id), "")
    period_value = (period or result.subscription.billing_period).value
    fields = {"plan_id": str(plan_id), "period": period_value, "quoted_at": quoted_at,
              "quote": _quote(portal, "plan", str(plan_id), period_value, quoted_at),
              "idempotency_key": uuid.uuid4().hex}
    preview = views.preview_view(result.preview, action="change-plan", title=plan_name, fields=fields,
                                 currency=data.currency, language=portal.language)
    return await render_plan_page(portal, preview)


@portal_action("change-plan")
async def change_plan(portal: Portal, form: dict[str, str]) -> Redirect:
    plan_id, period = _uuid(form.get("plan_id"), "planId"), _period(form.get("period"))
    quoted_at = _quoted_at(portal, form, "plan", str(plan_id), period.value if period else "")
    await plan_changes.change_plan(
        portal.db, portal_actor(portal), organization_id=portal.claims.organization_id, plan_id=plan_id,
        billing_period=period, effective=Effective.IMMEDIATE, idempotency_key=form.get("idempotency_key") or None,
        proration_date=quoted_at, gateways=portal.gateways, now=portal.now)
    return portal.back("", notice="plan-changed")


@portal_action("preview-addon")
async def preview_addon(portal: Portal, form: dict[str, str]) -> Response[str]:
    addon_id = _uuid(form.get("addon_id"), "addonId")
    quantity = 1 if form.get("quantity") == "1" else 0
    quoted_at = _instant(portal)
    service = plan_changes.attach_addon if quantity else plan_changes.detach_addon
    extra = {"quantity": quantity} if quantity else {}
    result = await service(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id,
                           addon_id=addon_id, dry_run=True, proration_date=datetime.fromisoformat(quoted_at),
                           gateways=portal.gateways, now=portal.now, **extra)
    data, _ = await load(portal)
    name = next((addon.name for addon in data.addons if addon.id == addon_id), "")
    fields = {"addon_id": str(addon_id), "quantity": str(quantity), "quoted_at": quoted_at,
              "quote": _quote(portal, "addon", str(addon_id), str(quantity), quoted_at),
              "idempotency_key": uuid.uuid4().hex}
    preview = views.preview_view(result.preview, action="change-addon", title=name, fields=fields,
                                 currency=data.currency, language=portal.language)
    return await render_plan_page(portal, preview)


@portal_action("change-addon")
async def change_addon(portal: Portal, form: dict[str, str]) -> Redirect:
    addon_id = _uuid(form.get("addon_id"), "addonId")
    quantity = 1 if form.get("quantity") == "1" else 0
    quoted_at = _quoted_at(portal, form, "addon", str(addon_id), str(quantity))
    service = plan_changes.attach_addon if quantity else plan_changes.detach_addon
    extra = {"quantity": quantity} if quantity else {}
    await service(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id, addon_id=addon_id,
                  idempotency_key=form.get("idempotency_key") or None, proration_date=quoted_at,
                  gateways=portal.gateways, now=portal.now, **extra)
    return portal.back("/plan", notice="addon-changed")


@portal_action("apply-coupon")
async def apply_coupon(portal: Portal, form: dict[str, str]) -> Redirect:
    await lifecycle.apply_coupon(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id,
                                 coupon_code=form.get("coupon_code", ""), now=portal.now)
    return portal.back("/plan", notice="coupon-applied")


@portal_action("cancel")
async def cancel(portal: Portal, form: dict[str, str]) -> Redirect:
    if form.get("confirm") != "yes":
        return portal.back("/cancel", error="confirm")
    reason = " - ".join(part for part in (form.get("reason", "").strip(), form.get("comment", "").strip()) if part)
    await lifecycle.cancel(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id,
                           immediately=False, reason=f"billing portal: {reason}" if reason else "billing portal",
                           now=portal.now)
    return portal.back("", notice="cancel-scheduled")


@portal_action("resume")
async def resume(portal: Portal, form: dict[str, str]) -> Redirect:
    await lifecycle.resume(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id,
                           now=portal.now)
    return portal.back("", notice="resumed")


def _retried(notice: str, retry: cards.Retry) -> str:
    return {cards.Retry.PAID: "retried-paid", cards.Retry.FAILED: "retried-failed"}.get(retry, notice)


@portal_action("add-card")
async def add_card(portal: Portal, form: dict[str, str]) -> Redirect:
    _, retry = await cards.add_card(portal.db, portal.gateways, portal_actor(portal), token=form.get("token", ""),
                                    label=form.get("label", ""), make_default=form.get("make_default") == "yes",
                                    now=portal.now)
    return portal.back("/cards", notice=_retried("card-added", retry))


@portal_action("add-stripe-card")
async def add_stripe_card(portal: Portal, form: dict[str, str]) -> Redirect:
    """A SetupIntent the browser confirmed with Stripe Elements (``stripe.confirmCardSetup``)."""
    _, retry = await cards.add_stripe_card(portal.db, portal.gateways, portal_actor(portal),
                                           setup_intent_id=form.get("setup_intent", ""),
                                           make_default=form.get("make_default") == "yes", now=portal.now)
    return portal.back("/cards", notice=_retried("card-added", retry))


@portal_action("add-razorpay-card")
async def add_razorpay_card(portal: Portal, form: dict[str, str]) -> Redirect:
    """What Razorpay Checkout's handler returned for the authorisation order this link's cards
    page made (its ``order_quote`` proves it); the signature is verified before anything is saved."""
    order_id = form.get("razorpay_order_id", "")
    expected = signature(portal.settings, "razorpay-order", portal.token, order_id)
    if not order_id or not hmac.compare_digest(form.get("order_quote", "").encode(), expected.encode()):
        return portal.back("/cards", error="card-signature")
    _, retry = await cards.add_razorpay_card(portal.db, portal.gateways, portal_actor(portal), order_id=order_id,
                                             payment_id=form.get("razorpay_payment_id", ""),
                                             signature=form.get("razorpay_signature", ""),
                                             make_default=form.get("make_default") == "yes", now=portal.now)
    return portal.back("/cards", notice=_retried("card-added", retry))


@portal_action("replace-card")
async def replace_card(portal: Portal, form: dict[str, str]) -> Redirect:
    _, retry = await cards.add_card(portal.db, portal.gateways, portal_actor(portal), token=form.get("token", ""),
                                    label=form.get("label", ""), make_default=True, replace_default=True,
                                    now=portal.now)
    return portal.back("", notice=_retried("card-replaced", retry))


@portal_action("default-card")
async def default_card(portal: Portal, form: dict[str, str]) -> Redirect:
    retry = await cards.make_default(portal.db, portal.gateways, portal_actor(portal),
                                     payment_method_id=_uuid(form.get("payment_method_id"), "id"), now=portal.now)
    return portal.back("/cards", notice=_retried("card-default", retry))


@portal_action("remove-card")
async def remove_card(portal: Portal, form: dict[str, str]) -> Redirect:
    await remove_payment_method(portal.db, portal_actor(portal),
                                payment_method_id=_uuid(form.get("payment_method_id"), "id"), now=portal.now)
    return portal.back("/cards", notice="card-removed")


@portal_action("pay-invoice")
async def pay(portal: Portal, form: dict[str, str]) -> Redirect:
    result = await pay_invoice(portal.db, portal_actor(portal), invoice_id=_uuid(form.get("invoice_id"), "invoiceId"),
                               organization_scope=portal.claims.organization_id, payment_method_id=None,
                               idempotency_key=form.get("idempotency_key") or None, gateways=portal.gateways,
                               now=portal.now)
    if result.invoice.status.value != "PAID":
        return portal.back("", error="payment-declined")
    return portal.back("", notice="invoice-paid")


@portal_action("update-details")
async def update_details(portal: Portal, form: dict[str, str]) -> Redirect:
    if portal.claims.role is not Role.OWNER:  # as updateBillingDetails: owners only
        return portal.back("/details", error="owners-only")
    await update_billing_details(portal.db, portal_actor(portal), organization_id=portal.claims.organization_id,
                                 legal_name=form.get("legal_name", ""), address=form.get("address", ""),
                                 country=form.get("country", ""), tax_id=form.get("tax_id", ""),
                                 language=form.get("language") or None, now=portal.now,
                                 gateways=portal.gateways)
    return portal.back("/details", notice="details-saved")


ACTIONS = [preview_plan, change_plan, preview_addon, change_addon, apply_coupon, cancel, resume, add_card,
           add_stripe_card, add_razorpay_card, replace_card, default_card, remove_card, pay, update_details]
