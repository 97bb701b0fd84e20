"""The KV mirror: revisions only move forward, deletes are remembered, garbage is skipped; and
it follows a real bucket on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


def test_purged_values_are_remembered_as_lost_until_replaced_deleted_or_expired() -> None:
    mirror = KvMirror(StreamRecord, keep_lost=60)
    mirror.apply("a", encode(record("a1")), 1, deleted=False)
    mirror.apply("b", encode(record("b1")), 2, deleted=False)
    mirror.apply("c", encode(record("c1")), 3, deleted=False)
    mirror.apply("a", None, 4, deleted=True, purged=True)  # behind the system's back
    mirror.apply("b", None, 5, deleted=True)  # a real removal
    assert set(mirror.lost) == {"a"}
    assert (mirror.lost["a"].value.title, mirror.lost["a"].revision) == ("a1", 4)
    mirror.apply("a", encode(record("a2")), 6, deleted=False)  # re-resolved
    assert not mirror.lost
    changes: list[tuple[str, int]] = []
    mirror.on_change = lambda k, v, r: changes.append((k, r)) if v is None else None
    mirror.apply("c", None, 7, deleted=True, purged=True)
    mirror.apply("c", None, 8, deleted=True)  # lost, then deleted for good: reported gone
    assert changes == [("c", 7), ("c", 8)]
    assert not mirror.lost
    mirror.on_change = None
    mirror.apply("c", encode(record("c1")), 9, deleted=False)
    mirror.start_over()  # the whole bucket lost: everything is lost, at revision 0
    assert {k: (v.value.title, v.revision) for k, v in mirror.lost.items()} == {
        "a": ("a2", 0), "c": ("c1", 0)}
    assert mirror.expire_lost(mirror.lost["a"].at + 59) == []
    # (+ 61, not + 60: (at + 60) - at can round below 60 for some values of the clock)
    assert sorted(k for k, _ in mirror.expire_lost(mirror.lost["a"].at + 61)) == ["a", "c"]
    assert not mirror.lost
    plain = KvMirror(StreamRecord)  # keeps nothing unless asked
    plain.apply("a", encode(record("a1")), 1, deleted=False)
    plain.apply("a", None, 2, deleted=True, purged=True)
    plain.start_over()
    assert not plain.lost


async def _until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_purged_or_re_created_bucket_is_noticed_and_followed_afresh(nc: Client) -> None:
    """Purging the bucket's stream tells no watcher: the mirror sees values it holds below the
    stream's first sequence, forgets what it had (remembered as lost) and follows what is there
    now, even when new values were written right after the purge."""
    js = nc.jetstream()
    await topology.apply(js)
    kv = await topology.streams_kv(js)
    for name in ("a", "b", "c"):
        await kv.put(f"2026.monaco.race.{name}", encode(record(name)))
    resets: list[int] = []
    mirror = KvMirror(StreamRecord, keep_lost=60)
    following = asyncio.create_task(mirror.follow_forever(
        js, topology.STREAMS_BUCKET, check=0.1, on_reset=lambda: resets.append(len(mirror.values))))
    try:
        await _until(lambda: len(mirror.values) == 3, "the three records")
        await js.purge_stream(topology.STREAMS_BUCKET_STREAM)
        for n in range(4):  # written at once: as many messages as the mirror has keys
            await kv.put("2026.monaco.race.xa", encode(record(f"xa{n}")))
        await _until(lambda: len(resets) == 1, "the purge noticed")
        await _until(lambda: len(mirror.values) == 1, "the value written after the purge")
        assert set(mirror.lost) == {f"2026.monaco.race.{n}" for n in "abc"}
        assert mirror.get("2026.monaco.race.xa") is not None
        await kv.put("2026.monaco.race.a", encode(record("a again")))
        await _until(lambda: mirror.get("2026.monaco.race.a") is not None, "the new record")
        assert set(mirror.lost) == {"2026.monaco.race.b", "2026.monaco.race.c"}
        await asyncio.sleep(0.5)  # settled: no further reset
        assert len(resets) == 1

        await js.delete_key_value(topology.STREAMS_BUCKET)
        await topology.apply(js)
        kv = await topology.streams_kv(js)
        await kv.put("2026.monaco.race.d", encode(record("d")))
        await _until(lambda: mirror.get("2026.monaco.race.d") is not None, "the new bucket's record")
        assert len(resets) == 2
        assert mirror.get("2026.monaco.race.a") is None
        assert "2026.monaco.race.a" in mirror.lost
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
