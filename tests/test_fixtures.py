"""The test harness's own fixtures start real servers of their own, never the machine's."""

from __future__ import annotations

import redis.asyncio as redis

from shared.natsserver import EmbeddedNats


async def test_redis_fixture_is_a_private_real_server(redis_url: str) -> None:
    """redis_url points at a redis-server the suite started (not 6379) that answers commands."""
    assert not redis_url.endswith(":6379/0")
    client = redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        await client.set("slipstream:test", b"1", ex=5)
        assert await client.get("slipstream:test") == b"1"
    finally:
        await client.aclose()


def test_nats_fixture_is_a_private_real_server(nats_server: EmbeddedNats) -> None:
    """The nats_server fixture runs its own nats-server on a free port, with its own store."""
    assert nats_server.process is not None
    assert nats_server.process.poll() is None
    assert not nats_server.url.endswith(":4222")
    assert (nats_server.folder / "store").is_dir()
