"""The relay's re-resolve rate limit alone (a fake clock), and asking without NATS."""

from __future__ import annotations

import asyncio

from services.relay.reresolve import MAX_KEYS, RateLimit, Reresolver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_request_per_stream_per_interval() -> None:
    """The first refusal asks; more within ten seconds do not; after that it asks again;
    each stream has its own allowance."""
    clock = Clock()
    limit = RateLimit(10.0, clock)
    assert limit.allow("a")
    assert not limit.allow("a")
    assert limit.allow("b")
    clock.now += 9.9
    assert not limit.allow("a")
    clock.now += 0.1
    assert limit.allow("a")


def test_memory_stays_bounded() -> None:
    """Many streams: entries older than the interval are dropped once the table is full."""
    clock = Clock()
    limit = RateLimit(10.0, clock)
    for i in range(MAX_KEYS):
        limit.allow(str(i))
    clock.now += 11
    limit.allow("new")
    assert len(limit._last) == 1


async def test_without_nats_a_refusal_is_logged_and_nothing_is_left_running() -> None:
    """No NATS connection: the refusal is noted, no task lingers, close returns at once."""
    reresolver = Reresolver(lambda: None)
    reresolver.refused("2026.demo.race.x", 403, "upstream: HTTP 403")
    reresolver.refused("2026.demo.race.x", 403, "upstream: HTTP 403")
    assert len(reresolver._tasks) == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not reresolver._tasks
    await reresolver.close()
