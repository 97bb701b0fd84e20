"""Shared cache and limits on a real redis-server, and the fallback when Redis is away."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from shared.cache import LimitTimeoutError, SharedState
from tests.conftest import start_redis


async def test_values_are_shared_between_replicas_through_redis(redis_url: str) -> None:
    """What one instance caches, another reads; entries expire."""
    a, b = SharedState(redis_url), SharedState(redis_url)
    try:
        await a.set("k1", b"value", ttl=0.3)
        assert await b.get("k1") == b"value"
        await asyncio.sleep(0.4)
        assert await b.get("k1") is None
        assert await a.check() is None
    finally:
        await a.close()
        await b.close()


async def test_oversized_and_wrong_type_entries_are_misses(redis_url: str) -> None:
    """An entry over the size cap or of another Redis type is rejected on read."""
    raw = aioredis.Redis.from_url(redis_url)
    state = SharedState(redis_url)
    try:
        await raw.set("slipstream:big", b"x" * 300_000)
        await raw.rpush("slipstream:list", b"a")
        assert await state.get("big") is None
        assert await state.get("list") is None
        assert state.last_error is None or "WRONGTYPE" in state.last_error
    finally:
        await raw.aclose()
        await state.close()


async def test_a_limit_holds_across_replicas(redis_url: str) -> None:
    """Two instances sharing Redis never run more than the limit at once."""
    a, b = SharedState(redis_url), SharedState(redis_url)
    running = peak = 0

    async def work(state: SharedState) -> None:
        nonlocal running, peak
        async with state.limit("source:x", 2):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1

    try:
        await asyncio.gather(*(work(s) for s in (a, b) * 4))
        assert peak == 2
        async with a.limit("source:y", 1):
            with pytest.raises(LimitTimeoutError):
                async with b.limit("source:y", 1, wait=0.3):
                    pass
    finally:
        await a.close()
        await b.close()


def test_memory_is_used_without_redis() -> None:
    """Without a Redis URL the same calls work from memory."""
    async def run() -> bytes | None:
        state = SharedState(None)
        await state.set("k", b"v", ttl=5)
        async with state.limit("s", 1):
            pass
        return await state.get("k")

    assert asyncio.run(run()) == b"v"


async def test_a_frozen_redis_is_given_up_on_and_used_again_later(tmp_path: Path) -> None:
    """SIGSTOP: the first call gives up by its timeout (a timeout, not another error or a hang)
    and falls back to memory, and the calls after it use memory without asking Redis at all
    until the back-off is over; SIGCONT: Redis is used again."""
    proc, url = start_redis(tmp_path)
    state = SharedState(url, timeout=0.2)
    assert state._redis is not None
    failures: list[BaseException] = []
    failed = state._failed

    def noted(exc: BaseException) -> None:
        failures.append(exc)
        failed(exc)

    state._failed = noted  # type: ignore[method-assign]
    asked: list[str] = []  # every command sent to Redis
    send: Callable[..., Awaitable[Any]] = state._redis.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        asked.append(str(args[0]))
        return await send(*args, **options)

    state._redis.execute_command = counting  # type: ignore[method-assign]
    try:
        await state.set("k", b"redis", ttl=60)
        os.kill(proc.pid, signal.SIGSTOP)
        asked.clear()
        assert await state.get("k") is None  # not in memory: it was written to Redis
        assert asked == ["GET"]
        assert len(failures) == 1
        assert isinstance(failures[0], redis.exceptions.TimeoutError | TimeoutError), failures
        assert state.last_error is not None
        assert not state.using_redis
        await state.set("k", b"memory", ttl=60)
        async with state.limit("s", 1, wait=1):
            pass
        assert await state.get("k") == b"memory"
        assert asked == ["GET"]  # nothing after the first call waited on the frozen Redis
        os.kill(proc.pid, signal.SIGCONT)
        state._down_until = 0.0  # skip the back-off wait in this test
        assert await state.check() is None
        assert await state.get("k") == b"redis"
        assert asked[-2:] == ["PING", "GET"]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        await state.close()
        proc.terminate()
        proc.wait(10)
