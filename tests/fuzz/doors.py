"""Hostile requests for the doors that do not go through GraphQL: the portal's forms and the inbound
gateway webhooks (signed as the processors sign them, so that they pass the signature check and reach
the body's reader). Shared by the bounded pytest test (tests/fuzz/test_doors.py, in-process, both
databases) and the fuzz script (tests/fuzz/run_schemathesis.sh -> fuzz_doors.py, against a served
gateway). Nothing here knows a route's rules: it only sends what a hostile client could send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from billing_graphql.gateways.sandbox import webhook_headers

PORTAL_ACTIONS = ("preview-plan", "change-plan", "replace-card", "add-card", "apply-coupon", "update-details",
                  "cancel", "resume", "no-such-action")
PORTAL_FIELDS = ("csrf", "plan_id", "idempotency_key", "token", "label", "confirm")
DEEP = "\x00deep:"  # a marker replaced by raw nested brackets once the body is JSON

# Text a hostile client sends: control characters, lone surrogates, bidi overrides, card numbers,
# long and odd-looking text, alongside ordinary text that must keep working.
SPECIAL_TEXT = [
    "\x00", "pm_nul\x00x", "\x1b[31mred", "del\x7f", "c1\x85", "\ud800", "x\udfff", "\ud83d", "", " ", "\t\n\r",
    "4111 1111 1111 1111", "\u202eevil", "\ufeff", "\uffff", "a" * 5000, "９９", "' OR 1=1 --", "<script>x</script>",
    "pm_card_visa", "Work card", "ünïcødé 名前", "%00", "../../etc/passwd",
]
hostile_text = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates included
)
big_numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400), st.sampled_from([2**63, -(2**63), 2**64, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Any JSON-ish value: hostile text, huge numbers, wrong types, and (as a marker) deep nesting."""
    leaves = st.one_of(hostile_text, big_numbers, st.none(), st.booleans(),
                       st.integers(min_value=33, max_value=6000).map(lambda depth: f"{DEEP}{depth}"))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)), max_leaves=max_leaves)


def to_json(value: Any) -> bytes:
    """JSON as a careless (or hostile) sender writes it: lone surrogates as ``\\ud800`` escapes, ``NaN``
    and ``Infinity`` as Python writes them, markers turned into brackets nested thousands deep."""
    text = json.dumps(value, ensure_ascii=True)
    return re.sub(r'"\\u0000deep:(\d+)"', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text).encode()


# ---- the portal's forms -------------------------------------------------------------------------

def form_value(text: str) -> str:
    """A value percent-encoded byte by byte as a browser would; a lone surrogate as the bytes a hostile
    client sends for it (``%ED%A0%80``)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@dataclass(frozen=True)
class FormPost:
    action: str
    body: bytes

    def __repr__(self) -> str:  # shown when an example fails
        return f"FormPost({self.action!r}, {self.body[:300]!r})"


@st.composite
def form_posts(draw: Any, csrf: str, plan_ids: list[str]) -> FormPost:
    """A post to one of the portal's actions: every field absent, valid, or hostile; sometimes an extra
    field, a repeated one, or raw bytes that are not UTF-8."""
    valid = {"csrf": csrf, "plan_id": draw(st.sampled_from(plan_ids)) if plan_ids else str(uuid.uuid4()),
             "idempotency_key": uuid.uuid4().hex, "token": "pm_card_mastercard", "label": "Work card",
             "period": "ANNUAL", "make_default": "yes", "coupon_code": "SAVE10", "legal_name": "PT Acme",
             "tax_id": "012345678901234", "reason": "unused", "confirm": "yes"}
    parts = []
    for name in PORTAL_FIELDS:
        choice = draw(st.sampled_from(["valid", "valid", "hostile", "absent"]))
        if choice == "valid":
            parts.append(f"{name}={form_value(valid[name])}")
        elif choice == "hostile":
            parts.append(f"{name}={form_value(draw(hostile_text))}")
    extra = draw(st.sampled_from([None, "extra", "repeat", "raw", "many"]))
    if extra == "extra":
        parts.append(f"{form_value(draw(hostile_text))}={form_value(draw(hostile_text))}")
    elif extra == "repeat" and parts:
        parts.append(parts[0])
    elif extra == "raw":
        parts.append("label=%FF%FE%C0%80")
    elif extra == "many":
        parts.extend(f"f{i}=x" for i in range(40))
    return FormPost(draw(st.sampled_from(PORTAL_ACTIONS)), "&".join(parts).encode())


# ---- inbound webhooks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookPost:
    gateway: str
    body: bytes
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"WebhookPost({self.gateway!r}, {self.body[:300]!r})"


EVENT_TYPES = st.one_of(st.sampled_from(["payment.captured", "payment.failed", "refund.processed"]), hostile_text)


def sandbox_signed(secret: str, body: bytes, event_id: str) -> dict[str, str]:
    return {"content-type": "application/json", **webhook_headers(secret, event_id, body)}


def razorpay_signed(secret: str, body: bytes, event_id: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-razorpay-signature": signature, "x-razorpay-event-id": event_id}


@st.composite
def webhook_posts(draw: Any, *, sandbox_secret: str, razorpay_secret: str, payment_keys: list[str]) -> WebhookPost:
    """A correctly signed event for the sandbox or Razorpay, its fields hostile or wrong-typed, often
    naming a real PENDING payment (``payment_keys``) so that whatever is accepted would be applied."""
    value = json_values()
    key = draw(st.one_of(st.sampled_from(payment_keys), value)) if payment_keys else draw(value)
    fields = {name: draw(value) for name in
              draw(st.lists(st.sampled_from(["payment_id", "refund_id", "failure_code", "failure_message", "amount"]),
                            unique=True))}
    event_type = draw(EVENT_TYPES)
    event_id = "evt_" + uuid.uuid4().hex + draw(st.sampled_from(["", "", "\x1b", "\x7f"]))
    if draw(st.booleans()):
        data = {"idempotency_key": key, **fields}
        payload: Any = {"type": event_type, "data": data}
        if draw(st.integers(0, 9)) == 0:
            payload = draw(value)  # not even an object
        body = to_json(payload)
        return WebhookPost("sandbox", body, sandbox_signed(sandbox_secret, body, event_id))
    entity = {"id": fields.get("payment_id"), "notes": {"idempotency_key": key},
              "error_code": fields.get("failure_code"), "error_description": fields.get("failure_message")}
    payload = {"event": event_type, "payload": {"payment": {"entity": entity},
                                                "refund": {"entity": {"id": fields.get("refund_id")}}}}
    if draw(st.integers(0, 9)) == 0:
        payload = draw(value)
    body = to_json(payload)
    if draw(st.integers(0, 9)) == 0:
        body = body.replace(b'"', b'"\xff', 1)  # not UTF-8 (Razorpay signs raw bytes)
    return WebhookPost("razorpay", body, razorpay_signed(razorpay_secret, body, event_id))


def examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples of ``strategy`` drawn by Hypothesis, reproducibly (derandomized), for an async
    test or a script to send (no shrinking: a failing request is reported as it was sent)."""
    drawn: list[Any] = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn
