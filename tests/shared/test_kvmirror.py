"""The KV mirror: revisions only move forward, deletes are remembered, garbage is skipped; and
it follows a real bucket on a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nats.aio.client import Client

from shared import topology
from shared.codec import encode
from shared.kvmirror import KvMirror
from shared.streams import Health, StreamRecord


def record(title: str) -> StreamRecord:
    return StreamRecord(id="a", session="2026.monaco.race", source_id="a", title=title,
                        upstream_url="https://cdn.example.test/a.m3u8",
                        resolved_at=datetime.now(UTC), health=Health.OK)


def test_stale_and_repeated_revisions_are_ignored_and_deletes_remembered() -> None:
    changes: list[tuple[str, str | None, int]] = []
    mirror = KvMirror(StreamRecord, on_change=lambda k, v, r: changes.append(
        (k, v.title if v else None, r)))
    mirror.apply("k", encode(record("one")), 5, deleted=False)
    mirror.apply("k", encode(record("stale")), 4, deleted=False)
    mirror.apply("k", encode(record("again")), 5, deleted=False)
    mirror.apply("k", b"{not json", 6, deleted=False)  # garbage: skipped, revision moves on
    mirror.apply("k", encode(record("two")), 7, deleted=False)
    mirror.apply("k", None, 8, deleted=True)
    mirror.apply("k", encode(record("late")), 7, deleted=False)
    assert changes == [("k", "one", 5), ("k", "two", 7), ("k", None, 8)]
    assert mirror.get("k") is None
    assert "k" in mirror.gone
    assert mirror.revision == 8


async def test_it_follows_a_real_bucket(nc: Client) -> None:
    js = nc.jetstream()
    await topology.apply(js)
    kv = await topology.streams_kv(js)
    await kv.put("2026.monaco.race.a", encode(record("before")))
    mirror = KvMirror(StreamRecord)
    following = asyncio.create_task(mirror.follow(kv))
    try:
        await asyncio.wait_for(mirror.synced.wait(), 5)
        assert mirror.get("2026.monaco.race.a").title == "before"  # type: ignore[union-attr]
        await kv.put("2026.monaco.race.a", encode(record("after")))
        for _ in range(100):
            if mirror.get("2026.monaco.race.a").title == "after":  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.02)
        assert mirror.get("2026.monaco.race.a").title == "after"  # type: ignore[union-attr]
        await kv.delete("2026.monaco.race.a")
        for _ in range(100):
            if mirror.get("2026.monaco.race.a") is None:
                break
            await asyncio.sleep(0.02)
        assert mirror.get("2026.monaco.race.a") is None
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
