"""Where an endpoint URL leads: its form and, in production, the addresses its host resolves to
(no private, loopback or link-local ones: no server-side request forgery). Checked when an
endpoint is created or changed and again before every delivery, after DNS resolution."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from billing_graphql.domain.errors import validation
from billing_graphql.domain.webhooks import EndpointUrl, check_resolved, parse_endpoint_url

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (an IP literal is itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [info[4][0] for info in infos]


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL; ``address`` is the resolved address to connect to (production only)."""

    endpoint: EndpointUrl
    address: str | None


async def check_target(url: str, *, production: bool, resolver: Resolver = resolve) -> Target:
    """The URL's target, or ValueError saying why it is refused."""
    endpoint = parse_endpoint_url(url, production=production)
    if not production:
        return Target(endpoint, None)
    addresses = check_resolved(endpoint.host, await resolver(endpoint.host, endpoint.port))
    return Target(endpoint, addresses[0])


async def validate_url(url: str, *, production: bool, resolver: Resolver = resolve) -> str:
    """An endpoint URL accepted for storing; VALIDATION on ``url`` otherwise."""
    try:
        await check_target(url, production=production, resolver=resolver)
    except ValueError as exc:
        raise validation(str(exc), "url") from None
    return url
