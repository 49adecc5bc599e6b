"""Outbound webhook rules: the retry schedule, outcomes, secrets, event filters, and which
addresses an endpoint may never point at (server-side request forgery).

Standard library only. The schedule is Standard Webhooks' (and Svix's): an attempt right away,
then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each delay with +-10% jitter.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS)
JITTER = 0.1  # a delay moves by at most +-10%
DISABLE_AFTER_FAILING = timedelta(days=5)
OLD_SECRET_VALID_FOR = timedelta(hours=24)
RESPONSE_BODY_LIMIT = 2048  # bytes kept of a receiver's answer
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_URL_LENGTH = 2000
MAX_EVENTS = 50
MAX_DESCRIPTION = 500
EVENT_FILTER = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")
INTERNAL_EVENT_PREFIX = "gateway."


#: Every event type sent to endpoints, with the GraphQL type of its ``data.object`` (README lists
#: each type's fields). An endpoint may subscribe to these, to a family of them, or to ``*``.
EVENT_TYPES: dict[str, str] = {
    "organization.created": "Organization",
    "organization.updated": "Organization",
    "organization.billing_details_updated": "Organization",
    "plan.created": "Plan",
    "plan.updated": "Plan",
    "addon.created": "Addon",
    "addon.updated": "Addon",
    "coupon.created": "Coupon",
    "coupon.updated": "Coupon",
    "subscription.created": "Subscription",
    "subscription.updated": "Subscription",
    "subscription.canceled": "Subscription",
    "subscription.trial_will_end": "Subscription",
    "invoice.created": "Invoice",
    "invoice.paid": "Invoice",
    "invoice.payment_failed": "Invoice",
    "invoice.payment_action_required": "Invoice",
    "invoice.disputed": "Invoice",
    "invoice.voided": "Invoice",
    "invoice.marked_uncollectible": "Invoice",
    "credit_note.created": "CreditNote",
    "invoice_item.created": "InvoiceItem",
    "checkout.started": "Invoice",
    "checkout.completed": "Invoice",
    "payment_method.added": "PaymentMethod",
    "payment_method.default_changed": "PaymentMethod",
    "payment_method.removed": "PaymentMethod",
    "refund.created": "Refund",
    "refund.failed": "Refund",
    "usage.limit_approaching": "UsageThreshold",  # not a GraphQL type: see README
    "usage.limit_reached": "UsageThreshold",
    "webhook_endpoint.disabled": "WebhookEndpoint",
    "webhook.test": "WebhookEndpoint",
}
EVENT_FAMILIES = frozenset(event.split(".", 1)[0] for event in EVENT_TYPES)


class Outcome(enum.Enum):
    DELIVERED = "DELIVERED"
    RETRY = "RETRY"
    FAILED = "FAILED"  # the last attempt failed
    GONE = "GONE"  # 410: the receiver asks us to stop; the endpoint is disabled


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    next_attempt_at: datetime | None = None


def jittered(delay: timedelta, rand: float) -> timedelta:
    """``delay`` moved by up to +-JITTER of itself; ``rand`` in [0, 1) (0.5 is no jitter)."""
    if not 0 <= rand <= 1:
        raise ValueError("rand must be in [0, 1]")
    return delay * (1 + JITTER * (2 * rand - 1))


def decide(*, attempts_in_schedule: int, status_code: int | None, now: datetime, rand: float) -> Decision:
    """What follows attempt number ``attempts_in_schedule`` (1-based) that answered ``status_code``
    (None: no answer, e.g. a timeout or a refused connection)."""
    if attempts_in_schedule < 1:
        raise ValueError("attempts are counted from 1")
    if status_code is not None and 200 <= status_code < 300:
        return Decision(Outcome.DELIVERED)
    if status_code == 410:
        return Decision(Outcome.GONE)
    if attempts_in_schedule >= MAX_ATTEMPTS:
        return Decision(Outcome.FAILED)
    return Decision(Outcome.RETRY, now + jittered(RETRY_DELAYS[attempts_in_schedule], rand))


def failing_too_long(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint whose deliveries have failed without a success for 5 days is disabled."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER_FAILING


def new_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64 (the form Standard Webhooks libraries read)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def truncate_body(body: bytes) -> str:
    """At most RESPONSE_BODY_LIMIT bytes of a response, as text (undecodable bytes replaced)."""
    return body[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def clean_event_filters(events: Iterable[str]) -> list[str]:
    """The event types an endpoint subscribes to: exact names of ``EVENT_TYPES`` (``invoice.paid``),
    a family of them (``invoice.*``) or everything (``*``). Raises ValueError with the reason."""
    cleaned: list[str] = []
    for event in events:
        if not isinstance(event, str) or not EVENT_FILTER.match(event) or len(event) > 100:
            raise ValueError(f"{event!r} is not an event type (like 'invoice.paid', 'invoice.*' or '*').")
        if event.startswith(INTERNAL_EVENT_PREFIX):
            raise ValueError(f"{event!r}: gateway events are not sent to webhook endpoints.")
        if event != "*" and (event[:-2] not in EVENT_FAMILIES if event.endswith(".*") else event not in EVENT_TYPES):
            raise ValueError(f"{event!r} is not an event type this gateway sends (see the README's list).")
        if event not in cleaned:
            cleaned.append(event)
    if not cleaned:
        raise ValueError("Subscribe to at least one event type ('*' for all).")
    if len(cleaned) > MAX_EVENTS:
        raise ValueError(f"At most {MAX_EVENTS} event types per endpoint.")
    return cleaned


def matches(filters: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint with these filters receives ``event_type``."""
    if event_type.startswith(INTERNAL_EVENT_PREFIX):
        return False
    for pattern in filters:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def forbidden_address(address: str) -> bool:
    """True for addresses a production endpoint may not reach: private, loopback, link-local
    (cloud metadata at 169.254.169.254), multicast, reserved or unspecified, also when an
    IPv6 address wraps an IPv4 one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and forbidden_address(str(inner)):
            return True
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified or not ip.is_global
    )


@dataclass(frozen=True, slots=True)
class EndpointUrl:
    url: str
    scheme: str
    host: str
    port: int


def parse_endpoint_url(url: str, *, production: bool) -> EndpointUrl:
    """Check an endpoint URL's form; raises ValueError with the reason. In production only https."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise ValueError(f"The URL must be 1 to {MAX_URL_LENGTH} characters.")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise ValueError("The URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"The URL is malformed: {exc}.") from None
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed:
        raise ValueError("Only https:// URLs are allowed." if production else "The URL must be http:// or https://.")
    if not parts.hostname:
        raise ValueError("The URL has no host.")
    if parts.username or parts.password:
        raise ValueError("The URL may not carry credentials.")
    if parts.fragment:
        raise ValueError("The URL may not have a #fragment.")
    return EndpointUrl(url=url, scheme=parts.scheme, host=parts.hostname,
                       port=port or (443 if parts.scheme == "https" else 80))


def check_resolved(host: str, addresses: Iterable[str]) -> list[str]:
    """The addresses ``host`` resolved to, when none of them is forbidden; ValueError otherwise."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise ValueError(f"The host {host!r} does not resolve.")
    for address in found:
        if forbidden_address(address):
            raise ValueError(
                f"The host {host!r} resolves to {address}, a private, loopback or link-local address."
            )
    return found


Random = Callable[[], float]
