"""Rate limiting: a fixed one-minute window per caller, counted in memory or in Redis.

Who the caller is:
- a credential (the ``Authorization`` header, hashed) that authenticates: a key or session
  token that works counts against its own budget, from its first request in a process (an
  unknown credential is checked here, before it is counted, and the answer is left in the
  request's state for the route to reuse);
- otherwise the caller's address: anonymous requests and requests with a credential that is
  refused share the address's budget, so junk bearer tokens cannot buy a fresh budget each,
  and cannot spend the budget of a credential that works either.

The address is the TCP peer, unless the peer is one of ``BILLING_TRUSTED_PROXIES``; then it
is the right-most ``X-Forwarded-For`` hop that is not a trusted proxy.

A refused request is HTTP 429 with ``Retry-After`` and a GraphQL-shaped body whose error has
``extensions.code`` RATE_LIMITED. Several processes share their counts through Redis
(``BILLING_REDIS_URL``): INCR and EXPIRE in one transaction, so no count is lost.

When Redis fails (down, unreachable, timing out after ``REDIS_TIMEOUT_SECONDS``) requests are
neither refused wholesale nor let through unlimited: each process counts them itself with the
same limit (so a flood is still limited, per process), logs one warning a minute and counts
each failure in ``billing_graphql_rate_limit_backend_errors_total``. Redis is tried again
``RETRY_REDIS_SECONDS`` after a failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from billing_graphql import metrics
from billing_graphql.services.platform.auth import AUTHENTICATION, authenticate_request
from billing_graphql.services.platform.clock import current_time
from billing_graphql.settings import Settings

log = logging.getLogger("billing_graphql.rate_limit")

WINDOW_SECONDS = 60
KNOWN_CREDENTIALS = 10_000
REDIS_TIMEOUT_SECONDS = 0.5
RETRY_REDIS_SECONDS = 5.0
WARN_EVERY_SECONDS = 60.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def credential_digest(authorization: str) -> str:
    return hashlib.sha256(authorization.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TrustedProxies:
    def __init__(self, networks: Sequence[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(item, strict=False) for item in networks]

    def __contains__(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: str | None) -> str:
        """The caller's address: the peer, or (behind trusted proxies) the right-most
        forwarded hop that is not itself a trusted proxy."""
        if not self.networks or peer not in self or not forwarded_for:
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if hop in self:
                continue
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                break  # garbage where an address should be: count it against the proxy
        return peer


class MemoryCounter:
    def __init__(self) -> None:
        self.window = -1
        self.counts: dict[str, int] = {}

    async def increment(self, key: str, window: int) -> int:
        if window != self.window:
            self.window, self.counts = window, {}
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        return count

    async def close(self) -> None:
        return None


class RedisCounter:
    def __init__(self, url: str, namespace: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                    socket_timeout=REDIS_TIMEOUT_SECONDS)
        self.namespace = namespace

    async def increment(self, key: str, window: int) -> int:
        name = f"{self.namespace}:{window}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self.redis.aclose()


class RateLimiter:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.limit = settings.rate_limit
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.clock = clock
        self.known: OrderedDict[str, None] = OrderedDict()
        self.fallback = MemoryCounter()  # this process's counts while the shared store fails
        self.shared_down_until = 0.0  # monotonic time before which the shared store is not tried
        self.last_warning = -math.inf
        if settings.redis_url:
            # Processes serving the same database share their counts; other deployments on
            # the same Redis do not.
            deployment = hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
            self.counter: MemoryCounter | RedisCounter = RedisCounter(
                settings.redis_url, f"billing-graphql:rate:{deployment}"
            )
        else:
            self.counter = MemoryCounter()

    # Credentials that authenticated in this process count against their own budget.
    def remember(self, authorization: str) -> None:
        digest = credential_digest(authorization)
        self.known[digest] = None
        self.known.move_to_end(digest)
        if len(self.known) > KNOWN_CREDENTIALS:
            self.known.popitem(last=False)

    def forget(self, authorization: str) -> None:
        self.known.pop(credential_digest(authorization), None)

    def address(self, scope: Scope, headers: dict[str, str]) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        return "address:" + self.proxies.client_address(peer, headers.get("x-forwarded-for"))

    def identity(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """The budget a request counts against; None for a credential not yet seen to work
        (``check`` decides it)."""
        authorization = headers.get("authorization")
        if authorization:
            digest = credential_digest(authorization)
            if digest in self.known:
                return "credential:" + digest
            return None
        return self.address(scope, headers)

    async def check(self, scope: Scope, authorization: str) -> bool:
        """Whether a credential not yet known works; the answer stays in the request's state."""
        app_state = scope["app"].state
        settings: Settings = app_state.settings
        now = await current_time(app_state.db, test_clock=settings.test_clock)
        try:
            actor = await authenticate_request(scope.setdefault("state", {}), app_state.db, authorization,
                                               jwt_secret=settings.jwt_secret, now=now)
        except Exception:  # refused (or not checkable now): the address's budget; the route answers
            return False
        return actor is not None

    async def _count(self, identity: str, window: int) -> int:
        if isinstance(self.counter, MemoryCounter):
            return await self.counter.increment(identity, window)
        if time.monotonic() >= self.shared_down_until:
            try:
                return await self.counter.increment(identity, window)
            except Exception as exc:  # the shared store is down: count in this process
                self.shared_down_until = time.monotonic() + RETRY_REDIS_SECONDS
                metrics.record_rate_limit_backend_error()
                if time.monotonic() - self.last_warning >= WARN_EVERY_SECONDS:
                    self.last_warning = time.monotonic()
                    log.warning("rate limits: Redis (BILLING_REDIS_URL) failed (%s); counting in this process "
                                "with the same limit until it answers again", type(exc).__name__)
        return await self.fallback.increment(identity, window)

    async def hit(self, identity: str) -> int | None:
        """Count a request; None when allowed, else the seconds until the window ends."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        count = await self._count(identity, window)
        if count <= self.limit:
            return None
        return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def rate_limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or _excluded(scope):
                await app(scope, receive, send)
                return
            headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
            authorization = headers.get("authorization")
            identity = self.identity(scope, headers)
            if identity is None:
                assert authorization is not None
                if await self.check(scope, authorization):
                    self.remember(authorization)
                    identity = "credential:" + credential_digest(authorization)
                else:
                    identity = self.address(scope, headers)
            retry_after = await self.hit(identity)
            if retry_after is not None:
                await _refuse(send, retry_after)
                return
            await app(scope, receive, send)
            # The route checked the credential (or reused the answer above): a known one that is
            # now refused (revoked, expired) goes back to the address's budget.
            known = scope.get("state", {}).get(AUTHENTICATION)
            if authorization and known is not None and known[0] == authorization and known[1] is None:
                self.forget(authorization)

        return rate_limited


def _excluded(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    return bool(handler is not None and handler.opt.get("exclude_from_rate_limit"))


async def _refuse(send: Send, retry_after: int) -> None:
    body = msgspec.json.encode(
        {
            "data": None,
            "errors": [
                {
                    "message": f"Rate limit exceeded: try again in {retry_after} s.",
                    "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after},
                }
            ],
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
