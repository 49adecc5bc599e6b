"""One frozen settings object, read from ``BILLING_*`` environment variables.

A bad value fails at start with a ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./billing.db"


class SettingsError(ValueError):
    """A BILLING_* variable holds a value the gateway cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = 20  # connections a process opens at most and keeps open (no overflow to open and close)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    graphiql: bool = True
    introspection: bool = True
    test_clock: bool = False
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    rate_limit: int = 600  # requests per minute per credential; 0 turns it off
    max_body_bytes: int = 256 * 1024
    redis_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is believed
    public_url: str = "http://localhost:8000"
    production: bool = False
    portal_secret: str | None = field(default=None, repr=False)
    razorpay_key_id: str | None = None
    razorpay_key_secret: str | None = field(default=None, repr=False)
    razorpay_webhook_secret: str | None = field(default=None, repr=False)
    razorpay_base_url: str = "https://api.razorpay.com"
    seller_name: str = "Billing Gateway"
    seller_address: str = ""
    portal_session_minutes: int = 30
    dunning_days: tuple[int, ...] = (1, 3, 5, 7)
    dunning_final_action: str = "unpaid"  # or "cancel"
    worker_interval_seconds: int = 60
    run_workers: bool = False  # `serve` turns it on (BILLING_WORKERS); `serve --no-worker` leaves it off
    sandbox_webhook_secret: str | None = field(default=None, repr=False)
    trial_once: bool = True  # an organization gets each plan's trial once
    seller_tax_id: str = ""
    graphiql_assets_dir: str | None = None
    metrics_token: str | None = field(default=None, repr=False)
    log_format: str = "text"  # "json": one JSON line per GraphQL request
    trusted_documents: str = "off"  # off | partner | all: who must send registered documents (queries/manifest.json)
    compiled_documents: bool = True  # query documents run on their compiled plans (graphql.compiled)
    plan_cache_size: int = 1000  # plans of non-registered documents kept (LRU by text); 0: registered ones only
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    stripe_js_url: str = "https://js.stripe.com/v3/"  # Stripe.js v3 for the portal's card form (localstripe serves one)
    default_currency: str = "IDR"  # a new organization's currency unless createOrganization names one
    billing_timezone: str = "UTC"  # the book's time zone: the payments CSV's days and times, documents' dates
    ws_max_per_credential: int = 20  # live WebSocket sockets per credential and process
    ws_ping_seconds: int = 15  # graphql-transport-ws pings to idle sockets; 0: none

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        production = reader.boolean("BILLING_PRODUCTION", False)
        jwt_secret = reader.text("BILLING_JWT_SECRET")
        if production and not jwt_secret:
            raise SettingsError("BILLING_JWT_SECRET must be set when BILLING_PRODUCTION is on")
        if jwt_secret is not None and len(jwt_secret) < 32:
            raise SettingsError("BILLING_JWT_SECRET must be at least 32 characters")
        database_url = reader.text("BILLING_DATABASE_URL") or DEFAULT_DATABASE_URL
        if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError(
                "BILLING_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        values = dict(
            database_url=database_url,
            graphiql=reader.boolean("BILLING_GRAPHIQL", not production),
            introspection=reader.boolean("BILLING_INTROSPECTION", not production),
            test_clock=reader.boolean("BILLING_TEST_CLOCK", False),
            max_query_depth=reader.integer("BILLING_MAX_QUERY_DEPTH", 10, minimum=2),
            max_aliases=reader.integer("BILLING_MAX_ALIASES", 30, minimum=1),
            max_tokens=reader.integer("BILLING_MAX_TOKENS", 2000, minimum=50),
            rate_limit=reader.integer("BILLING_RATE_LIMIT", 600, minimum=0),
            max_body_bytes=reader.integer("BILLING_MAX_BODY_BYTES", 256 * 1024, minimum=1024),
            redis_url=_redis_url(reader.text("BILLING_REDIS_URL")),
            trusted_proxies=reader.networks("BILLING_TRUSTED_PROXIES"),
            public_url=(reader.text("BILLING_PUBLIC_URL") or "http://localhost:8000").rstrip("/"),
            production=production,
            portal_secret=reader.text("BILLING_PORTAL_SECRET"),
            razorpay_key_id=reader.text("BILLING_RAZORPAY_KEY_ID"),
            razorpay_key_secret=reader.text("BILLING_RAZORPAY_KEY_SECRET"),
            razorpay_webhook_secret=reader.text("BILLING_RAZORPAY_WEBHOOK_SECRET"),
            razorpay_base_url=reader.text("BILLING_RAZORPAY_BASE_URL") or "https://api.razorpay.com",
            seller_name=reader.text("BILLING_SELLER_NAME") or "Billing Gateway",
            # Lines of the address may be separated by "\n" or by literal "\\n" in the variable.
            seller_address=(reader.text("BILLING_SELLER_ADDRESS") or "").replace("\\n", "\n"),
            portal_session_minutes=reader.integer("BILLING_PORTAL_SESSION_MINUTES", 30, minimum=1),
            dunning_days=_dunning_days(reader.text("BILLING_DUNNING_DAYS")),
            dunning_final_action=reader.choice("BILLING_DUNNING_FINAL_ACTION", "unpaid", ("unpaid", "cancel")),
            worker_interval_seconds=reader.integer("BILLING_WORKER_INTERVAL_SECONDS", 60, minimum=1),
            run_workers=reader.boolean("BILLING_WORKERS", False),
            sandbox_webhook_secret=reader.text("BILLING_SANDBOX_WEBHOOK_SECRET"),
            trial_once=reader.boolean("BILLING_TRIAL_ONCE", True),
            seller_tax_id=reader.text("BILLING_SELLER_TAX_ID") or "",
            graphiql_assets_dir=reader.text("BILLING_GRAPHIQL_ASSETS_DIR"),
            metrics_token=reader.text("BILLING_METRICS_TOKEN"),
            log_format=reader.choice("BILLING_LOG_FORMAT", "text", ("text", "json")),
            trusted_documents=reader.choice("BILLING_TRUSTED_DOCUMENTS", "off", ("off", "partner", "all")),
            compiled_documents=reader.boolean("BILLING_COMPILED_DOCUMENTS", True),
            plan_cache_size=reader.integer("BILLING_PLAN_CACHE_SIZE", 1000, minimum=0),
            db_pool_size=reader.integer("BILLING_DB_POOL_SIZE", 20, minimum=1),
            default_currency=_currency(reader.text("BILLING_DEFAULT_CURRENCY")),
            billing_timezone=_timezone(reader.text("BILLING_TIMEZONE")),
            ws_max_per_credential=reader.integer("BILLING_WS_MAX_PER_CREDENTIAL", 20, minimum=1),
            ws_ping_seconds=reader.integer("BILLING_WS_PING_SECONDS", 15, minimum=0),
        )
        values.update(_stripe(reader))
        if jwt_secret:
            values["jwt_secret"] = jwt_secret
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def timezone(self) -> ZoneInfo:
        """BILLING_TIMEZONE as a zone (the IANA database caches it)."""
        return ZoneInfo(self.billing_timezone)


def _redis_url(text: str | None) -> str | None:
    """A URL redis-py can open: redis://host[:port][/db], rediss://... or unix:///path. The value is
    not echoed (it may hold a password)."""
    if text is None:
        return None
    problem = "BILLING_REDIS_URL must be a redis://host:port/db, rediss://... or unix:///path URL"
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError when the port is not a number in range
    except ValueError:
        raise SettingsError(f"{problem} (its port is not a number)") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"{problem} (it has no such scheme)")
    if parts.scheme == "unix" and not parts.path:
        raise SettingsError(f"{problem} (a unix:// URL needs a socket path)")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"{problem} (it names no host)")
    del port
    return text


def _stripe(reader: _Reader) -> dict[str, str | None]:
    """BILLING_STRIPE_*: the keys go together and each has Stripe's prefix."""
    secret_key = reader.text("BILLING_STRIPE_SECRET_KEY")
    publishable_key = reader.text("BILLING_STRIPE_PUBLISHABLE_KEY")
    webhook_secret = reader.text("BILLING_STRIPE_WEBHOOK_SECRET")
    api_base = (reader.text("BILLING_STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/")
    js_url = reader.text("BILLING_STRIPE_JS_URL") or "https://js.stripe.com/v3/"
    for name, value, prefixes in (
        ("BILLING_STRIPE_SECRET_KEY", secret_key, ("sk_", "rk_")),
        ("BILLING_STRIPE_PUBLISHABLE_KEY", publishable_key, ("pk_",)),
        ("BILLING_STRIPE_WEBHOOK_SECRET", webhook_secret, ("whsec_",)),
    ):
        if value is not None and (not value.startswith(prefixes) or any(char.isspace() for char in value)):
            raise SettingsError(f"{name} must start with {' or '.join(prefixes)} (as Stripe's dashboard shows it)")
    if (secret_key is None) != (publishable_key is None):
        missing = "BILLING_STRIPE_PUBLISHABLE_KEY" if publishable_key is None else "BILLING_STRIPE_SECRET_KEY"
        raise SettingsError(f"{missing} must be set with the other Stripe key")
    if not api_base.startswith(("https://", "http://")) or any(char.isspace() for char in api_base):
        raise SettingsError(f"BILLING_STRIPE_API_BASE must be an http(s) URL; got {api_base!r}")
    if not js_url.startswith(("https://", "http://")) or any(char.isspace() or char in "'\"<>" for char in js_url):
        raise SettingsError(f"BILLING_STRIPE_JS_URL must be an http(s) URL; got {js_url!r}")
    return dict(stripe_secret_key=secret_key, stripe_publishable_key=publishable_key,
                stripe_webhook_secret=webhook_secret, stripe_api_base=api_base, stripe_js_url=js_url)


def _currency(text: str | None) -> str:
    from billing_graphql.domain.money import DEFAULT_CURRENCY, EXPONENTS

    if text is None:
        return DEFAULT_CURRENCY
    if text.upper() not in EXPONENTS:
        raise SettingsError(f"BILLING_DEFAULT_CURRENCY: unknown currency {text!r}; known: {', '.join(sorted(EXPONENTS))}")
    return text.upper()


def _timezone(text: str | None) -> str:
    if text is None:
        return "UTC"
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"BILLING_TIMEZONE must be an IANA time zone such as Asia/Jakarta or UTC; got {text!r}") \
            from None
    return text


def _dunning_days(text: str | None) -> tuple[int, ...]:
    from billing_graphql.domain.dunning import DEFAULT_DUNNING_DAYS, parse_dunning_days

    if text is None:
        return DEFAULT_DUNNING_DAYS
    try:
        return parse_dunning_days(text)
    except ValueError as exc:
        raise SettingsError(f"BILLING_DUNNING_DAYS: {exc}") from None


class _Reader:
    _TRUE = {"1", "true", "yes", "on"}
    _FALSE = {"0", "false", "no", "off"}

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in self._TRUE:
            return True
        if lowered in self._FALSE:
            return False
        raise SettingsError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value.lower()
    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks."""
        value = self.text(name)
        if value is None:
            return ()
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(f"{name} must list IP addresses or networks (CIDR); got {item!r}") from None
        return items

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number; got {value!r}") from None
        if number < minimum:
            raise SettingsError(f"{name} must be at least {minimum}; got {number}")
        return number
