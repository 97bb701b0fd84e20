"""State shared by replicas: a small byte cache and per-name concurrency limits.

With Redis configured, both live in Redis so that replicas share them; every Redis call has a
short timeout, and while Redis is unreachable (or answers nothing: a stopped process) the
process falls back to memory for a few seconds before trying Redis again, so nothing hangs and
Redis is used again when it returns, without a restart. Without Redis everything is in memory.
Entries read back are size-checked; anything unexpected counts as a miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared import logs

log = logs.get(__name__)

MAX_ENTRY: Final = 256 * 1024
MEMORY_ENTRIES: Final = 2048
RETRY_REDIS_AFTER: Final = 5.0
PREFIX: Final = "slipstream:"

# Take a lease if fewer than the limit are held (expired leases are dropped first).
_ACQUIRE: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(ARGV[2]) * 1000))
  return 1
end
return 0
"""


class LimitTimeoutError(TimeoutError):
    """No slot under the concurrency limit became free in time."""


class SharedState:
    """Cache and limits, in Redis when configured and reachable, else in memory."""

    def __init__(self, url: str | None = None, *, timeout: float = 0.5,
                 max_entry: int = MAX_ENTRY) -> None:
        self.url = url
        self.timeout = timeout
        self.max_entry = max_entry
        self._redis: aioredis.Redis | None = None
        if url:
            self._redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry_on_timeout=False, health_check_interval=30)
        self._down_until = 0.0
        self.last_error: str | None = None
        self._memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    @property
    def using_redis(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self.last_error is None:
            log.warning("redis unavailable; using memory", error=str(exc) or type(exc).__name__)
        self.last_error = str(exc) or type(exc).__name__
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER

    def _recovered(self, *, end_backoff: bool = False) -> None:
        if self.last_error is not None:
            log.info("redis reachable again")
        self.last_error = None
        if end_backoff:  # a readiness ping sent now got through: no need to wait out the rest
            self._down_until = 0.0

    async def get(self, key: str) -> bytes | None:
        """A cached value, or ``None`` (missing, expired, oversized, wrong type, Redis away)."""
        if self.using_redis and self._redis is not None:
            try:
                async with asyncio.timeout(self.timeout * 2):
                    value = await self._redis.get(PREFIX + key)
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            else:
                self._recovered()
                if isinstance(value, bytes) and len(value) <= self.max_entry:
                    return value
                return None
        entry = self._memory.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._memory.pop(key, None)
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Cache ``value`` for ``ttl`` seconds (values over ``max_entry`` are not cached)."""
        if len(value) > self.max_entry or ttl <= 0:
            return
        if self.using_redis and self._redis is not None:
            try:
                async with asyncio.timeout(self.timeout * 2):
                    await self._redis.set(PREFIX + key, value, px=int(ttl * 1000))
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            else:
                self._recovered()
                return
        self._memory[key] = (time.monotonic() + ttl, value)
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

    async def claim(self, name: str, ttl: float) -> bool:
        """Claim ``name`` for ``ttl`` seconds across replicas; ``True`` if this process got it
        (always, without Redis: then only this process's own single-flight applies)."""
        if not (self.using_redis and self._redis is not None):
            return True
        try:
            async with asyncio.timeout(self.timeout * 2):
                got = await self._redis.set(f"{PREFIX}claim:{name}", b"1", nx=True,
                                            px=int(ttl * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return True
        self._recovered()
        return bool(got)

    async def release(self, name: str) -> None:
        """Give a claim back early."""
        if self._redis is not None and self.using_redis:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(self.timeout * 2):
                    await self._redis.delete(f"{PREFIX}claim:{name}")

    async def _try_lease(self, name: str, limit: int, token: str, lease: float) -> bool | None:
        """``True``/``False`` from Redis, ``None`` when Redis cannot be used."""
        if not (self.using_redis and self._redis is not None):
            return None
        now = time.time()
        try:
            async with asyncio.timeout(self.timeout * 2):
                got = await self._redis.eval(_ACQUIRE, 1, f"{PREFIX}limit:{name}",
                                             str(now), str(now + lease), str(limit), token)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._recovered()
        return bool(got)

    @contextlib.asynccontextmanager
    async def limit(self, name: str, limit: int, *, wait: float = 30.0,
                    lease: float = 120.0) -> AsyncIterator[None]:
        """Hold one of ``limit`` slots called ``name`` (shared by replicas through Redis)."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        while True:
            leased = await self._try_lease(name, limit, token, lease)
            if leased is None:
                break  # Redis away: fall back to this process's own limit
            if leased:
                try:
                    yield
                finally:
                    if self._redis is not None:
                        with contextlib.suppress(RedisError, OSError, TimeoutError):
                            async with asyncio.timeout(self.timeout * 2):
                                await self._redis.zrem(f"{PREFIX}limit:{name}", token)
                return
            if time.monotonic() >= deadline:
                raise LimitTimeoutError(f"no free slot for {name} within {wait:.0f} s")
            await asyncio.sleep(0.05 + random.random() * 0.1)  # noqa: S311 - jitter, not crypto
        semaphore = self._semaphores.setdefault(name, asyncio.Semaphore(limit))
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                await semaphore.acquire()
        except TimeoutError as exc:
            raise LimitTimeoutError(f"no free slot for {name} within {wait:.0f} s") from exc
        try:
            yield
        finally:
            semaphore.release()

    async def check(self) -> str | None:
        """Readiness: ``None`` when Redis answers (or is not configured), else why not."""
        if self._redis is None:
            return None
        try:
            async with asyncio.timeout(self.timeout * 2):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return f"unreachable ({str(exc) or type(exc).__name__}); using memory"
        self._recovered(end_backoff=True)
        return None

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
