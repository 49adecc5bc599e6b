"""The portal's form input: the body read once by ``read_form`` (strict UTF-8, each field once,
every name and value through the text rule of all input, ``domain.text``, as GraphQL text input),
the CSRF token (an HMAC of the portal link under ``BILLING_PORTAL_SECRET``) and the same-origin
check. A form that breaks them runs nothing and comes back with a sentence."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from litestar import Request

from billing_graphql.domain.text import CARD_NUMBER_REFUSAL, forbidden_character, text_refusal
from billing_graphql.settings import Settings

MAX_FORM_FIELDS = 16
# Fields with a format of their own (an HMAC, a key, ids, an instant): the card rule of free text
# does not apply to them (a long run of digits in them is no card number).
FORMATTED_FORM_FIELDS = frozenset({"csrf", "idempotency_key", "plan_id", "addon_id", "invoice_id",
                                   "payment_method_id", "quoted_at", "quote", "quantity", "period", "confirm",
                                   "make_default", "tax_id", "setup_intent", "razorpay_order_id",
                                   "razorpay_payment_id", "razorpay_signature", "order_quote"})


class FormRefused(ValueError):
    """A form body that breaks the input rules; ``code`` is its error key (``messages.ERRORS``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def read_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body, each name once. Bytes that are
    not UTF-8 (an encoded lone surrogate included) or a control character in a name or value:
    ``FormRefused("text")``; a repeated name or more than ``MAX_FORM_FIELDS``: ``FormRefused("form")``;
    a card number in free text: ``FormRefused("card")``."""
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
        if text_refusal(value, free_text=name not in FORMATTED_FORM_FIELDS) == CARD_NUMBER_REFUSAL:
            raise FormRefused("card")
        if name in fields:
            raise FormRefused("form")
        fields[name] = value
    return fields


def signature(settings: Settings, purpose: str, *parts: str) -> str:
    """An HMAC under ``BILLING_PORTAL_SECRET`` of ``purpose`` and ``parts``."""
    message = "|".join((purpose, *parts)).encode()
    return hmac.new((settings.portal_secret or "").encode(), message, hashlib.sha256).hexdigest()


def csrf_token(settings: Settings, token: str) -> str:
    return signature(settings, "portal-csrf", token)


def same_origin(request: Request[Any, Any, Any]) -> bool:
    """Refuse what the browser says came from another site. (The page is sent with
    ``Referrer-Policy: no-referrer``, so the browser's own form posts carry ``Origin: null``.)"""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
