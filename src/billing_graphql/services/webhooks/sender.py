"""One delivery attempt over HTTP: the Standard Webhooks headers made by the ``standardwebhooks``
library (one signature per valid secret, so a rotation's old secret still verifies), a POST
with a 15 s timeout, and at most 2 KB of the answer kept.

In production the host is resolved and checked again right before the request, and the
connection goes to the checked address (the TLS name and Host header stay the URL's), so a DNS
answer that changes between check and connect cannot point the request inside the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from billing_graphql.domain.webhooks import RESPONSE_BODY_LIMIT, truncate_body
from billing_graphql.services.webhooks.addresses import Resolver, check_target, resolve

TIMEOUT_SECONDS = 15.0
USER_AGENT = "billing-graphql-webhooks/1"


@dataclass(frozen=True, slots=True)
class Message:
    """What is sent: the same id and body on every attempt."""

    url: str
    webhook_id: str
    body: str
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None  # None: no HTTP answer (timeout, refused, address not allowed)
    response_body: str | None
    error: str | None


def signature_headers(message: Message, at: datetime) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(message.webhook_id, at, message.body) for secret in message.secrets)
    return {
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


class Sender:
    def __init__(
        self,
        *,
        production: bool,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver = resolve,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.production = production
        self.resolver = resolver
        self._owned = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def close(self) -> None:
        if self._owned:
            await self.client.aclose()

    async def send(self, message: Message) -> AttemptResult:
        try:
            target = await check_target(message.url, production=self.production, resolver=self.resolver)
        except ValueError as exc:
            return AttemptResult(None, None, f"Refused: {exc}")
        # Signed with the wall clock: receivers check it against theirs (5 minutes' tolerance).
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signature_headers(message, datetime.now(UTC)),
        }
        url, extensions = message.url, {}
        if target.address is not None:
            url, extensions = _pinned(message.url, target.address, target.endpoint.host)
            headers["host"] = _host_header(target.endpoint.host, target.endpoint.port, target.endpoint.scheme)
        try:
            async with self.client.stream("POST", url, content=message.body.encode(), headers=headers,
                                          extensions=extensions) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= RESPONSE_BODY_LIMIT:
                        break
                return AttemptResult(response.status_code, truncate_body(body), None)
        except httpx.TimeoutException:
            return AttemptResult(None, None, "Timed out.")
        except httpx.HTTPError as exc:
            return AttemptResult(None, None, f"{type(exc).__name__}: {exc}"[:500])


def _pinned(url: str, address: str, host: str) -> tuple[str, dict[str, str]]:
    """The URL with its host replaced by the checked address; TLS still checks ``host``."""
    return str(httpx.URL(url).copy_with(host=address)), {"sni_hostname": host}


def _host_header(host: str, port: int, scheme: str) -> str:
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"
