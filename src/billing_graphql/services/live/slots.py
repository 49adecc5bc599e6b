"""``BILLING_WS_MAX_PER_CREDENTIAL`` across ``serve`` processes: one Redis sorted set per credential.

With ``BILLING_REDIS_URL`` set, each open socket holds a member of ``billing-graphql:ws:<deployment>:<credential
digest>`` whose score is when it lapses (Redis's own clock, so processes need not agree on theirs). Taking a
slot drops the lapsed members, counts the rest and adds this socket in one Lua script (atomic: two processes
cannot both take the last slot). Each process renews its sockets' members every ``HEARTBEAT_SECONDS``; a
process that dies stops renewing and its slots lapse within ``TTL_SECONDS`` instead of leaking. A socket
that closes gives its slot back at once. Without Redis, or while Redis fails, the count is this process's
own (as the rate limit falls back).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from contextlib import suppress

log = logging.getLogger("billing_graphql.live")

TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10
TIMEOUT_SECONDS = 1.0

_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""
_RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
for i = 2, #ARGV, 2 do
  redis.call('ZADD', ARGV[i - 1], 'XX', t + tonumber(ARGV[1]), ARGV[i])
end
return 1
"""


class SocketSlots:
    """This process's sockets per credential digest, and the shared count when Redis is configured."""

    def __init__(self, redis_url: str | None, database_url: str) -> None:
        self.local: dict[str, set[str]] = {}
        self.shared: dict[str, set[str]] = {}  # the slots this process holds in Redis
        self.redis = None
        self.heartbeat: asyncio.Task | None = None
        if redis_url:
            from redis.asyncio import Redis

            self.redis = Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT_SECONDS,
                                        socket_timeout=TIMEOUT_SECONDS)
            deployment = hashlib.sha256(database_url.encode()).hexdigest()[:12]
            self.namespace = f"billing-graphql:ws:{deployment}"

    def _key(self, digest: str) -> str:
        return f"{self.namespace}:{digest}"

    async def take(self, digest: str, limit: int) -> str | None:
        """A slot for one more socket of the credential (its id), or None when ``limit`` are open."""
        slot = uuid.uuid4().hex
        if self.redis is not None:
            try:
                taken = await self.redis.eval(_TAKE, 1, self._key(digest), limit, TTL_SECONDS, slot)
            except Exception as exc:  # noqa: BLE001 - Redis down: count in this process
                log.warning("live: Redis could not count sockets (%s); counting in this process", type(exc).__name__)
            else:
                if not taken:
                    return None
                self.shared.setdefault(digest, set()).add(slot)
                self.local.setdefault(digest, set()).add(slot)
                self._beat()
                return slot
        sockets = self.local.setdefault(digest, set())
        if len(sockets) >= limit:
            return None
        sockets.add(slot)
        return slot

    async def give_back(self, digest: str, slot: str) -> None:
        sockets = self.local.get(digest)
        if sockets is not None:
            sockets.discard(slot)
            if not sockets:
                del self.local[digest]
        held = self.shared.get(digest)
        if held is not None and slot in held:
            held.discard(slot)
            if not held:
                del self.shared[digest]
            with suppress(Exception):  # unreachable: the slot lapses by itself
                await self.redis.zrem(self._key(digest), slot)

    def _beat(self) -> None:
        if self.heartbeat is None or self.heartbeat.done():
            self.heartbeat = asyncio.get_running_loop().create_task(self._renew(), name="live-socket-slots")

    async def _renew(self) -> None:
        while self.shared:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            arguments: list = [TTL_SECONDS]
            for digest, slots in list(self.shared.items()):
                for slot in slots:
                    arguments += [self._key(digest), slot]
            try:
                await self.redis.eval(_RENEW, 0, *arguments)
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("live: renewing socket slots in Redis failed (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        if self.redis is not None:
            for digest, slots in list(self.shared.items()):
                with suppress(Exception):
                    await self.redis.zrem(self._key(digest), *slots)
            await self.redis.aclose()
