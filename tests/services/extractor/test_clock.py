"""Measuring a stream's clock: reading playlist timing, keeping the shared anchor while sightings
agree with it, bounded-rate writes, and sightings of the real demo origin's delayed feeds over
real HTTP (their true delay is known: 0, 6 and 12 s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from services.demo import live
from services.demo.app import create_app as demo_app
from services.demo.feeds import FEED_WINDOW, FEEDS
from services.demo.media import renditions
from services.extractor import clock
from services.extractor.clock import ClockError, Sighting, timeline, update
from shared.streams import TimeSource

R = renditions()[0]
NOW = live.EPOCH + timedelta(days=200, seconds=5.5)


def test_the_timeline_dates_the_newest_segment_from_the_last_program_date_time() -> None:
    """The demo dates only the first segment and each loop wrap: the newest is dated by
    carrying the last tag forward over the durations."""
    line = timeline(live.media_playlist(R, NOW, FEED_WINDOW))
    assert line.newest == live.live_edge(NOW, 2.0)
    assert line.newest_start == live.EPOCH + timedelta(seconds=line.newest * 2)
    assert line.period == 2.0
    assert line.target_duration == 2
    without = timeline(live.media_playlist(R, NOW, dates=False))
    assert without.newest_start is None
    assert not without.ended


def test_a_playlist_without_segments_gives_no_timeline() -> None:
    with pytest.raises(ClockError):
        timeline("#EXTM3U\n#EXT-X-TARGETDURATION:2\n")


def sighting(at: datetime, *, dates: bool = True, delay: float = 0.0) -> Sighting:
    text = live.media_playlist(R, at - timedelta(seconds=delay), dates=dates)
    return Sighting(timeline=timeline(text), at=at.timestamp(), error=0.05)


def edge(n: int) -> datetime:
    """The moment segment n appears in the undelayed demo stream (its end)."""
    return live.EPOCH + timedelta(seconds=(n + 1) * 2)


def test_origin_time_gives_the_delay_from_the_segments_own_end() -> None:
    """Seen 6.2 s after it ended: a delay of 6.2 s, time from the origin."""
    n = 9_000_000
    got = update(None, sighting(edge(n) + timedelta(seconds=6.2), delay=6.2))
    assert got.source is TimeSource.ORIGIN
    assert got.sequence == n
    assert got.delay == pytest.approx(6.2)
    assert got.start == live.EPOCH + timedelta(seconds=n * 2)


def test_stamped_time_starts_a_segment_one_duration_before_it_appeared() -> None:
    n = 9_000_000
    got = update(None, sighting(edge(n) + timedelta(seconds=0.1), dates=False))
    assert got.source is TimeSource.STAMPED
    assert got.sequence == n
    assert got.start == live.EPOCH + timedelta(seconds=n * 2 + 0.1)
    assert got.delay == 0.0


def test_the_anchor_is_kept_while_sightings_agree_and_moves_when_they_do_not() -> None:
    """Later sightings within the tolerance keep the anchor (the same stamps for the same
    segments: a re-resolve to the same upstream changes nothing); a sighting far off (an
    upstream that renumbered) moves it."""
    n = 9_000_000
    first = update(None, sighting(edge(n) + timedelta(seconds=0.1), dates=False))
    later = update(first, sighting(edge(n + 40) + timedelta(seconds=0.35), dates=False))
    assert (later.sequence, later.start, later.period) == (first.sequence, first.start, 2.0)
    assert later.delay == pytest.approx(0.25)
    assert clock.settled(first, later) is first  # a quarter of a second: not worth a write
    jumped = update(first, sighting(edge(n + 40) + timedelta(seconds=1.5), dates=False))
    assert jumped.sequence == n + 40
    assert clock.settled(first, jumped) is jumped


def test_a_delay_that_moved_is_written() -> None:
    n = 9_000_000
    first = update(None, sighting(edge(n) + timedelta(seconds=6.0), delay=6.0))
    slower = update(first, sighting(edge(n + 5) + timedelta(seconds=7.0), delay=7.0))
    assert slower.delay == pytest.approx(7.0)
    assert clock.settled(first, slower) is slower
    assert clock.settled(None, first) is first
    # the origin's time agrees with the anchor: kept, whatever the delay
    assert msgspec.structs.replace(slower, delay=first.delay, measured_at=first.measured_at) \
        == first


@pytest.mark.timeout(60)
async def test_sightings_of_the_demo_feeds_give_their_true_delays(
        serve: Callable[..., str]) -> None:
    """Over real HTTP, against the demo origin: each feed's delay is its true one within a
    quarter of a second; the feed without program date-times gets stamped time whose anchor
    is the true time of the segment (the demo knows it: EPOCH + 2 s per segment)."""
    base = serve(demo_app())
    async with httpx.AsyncClient(timeout=5) as http:
        async def measure(name: str) -> Any:
            async def load() -> str:
                return (await http.get(f"{base}/feeds/{name}/360p/index.m3u8")).text
            return update(None, await clock.watch_edge(load, wall=time.time))

        for name, feed in FEEDS.items():
            got = await measure(name)
            if feed.dates:
                assert got.source is TimeSource.ORIGIN
                assert got.delay == pytest.approx(feed.delay, abs=0.25), name
            else:
                assert got.source is TimeSource.STAMPED
                truth = live.EPOCH + timedelta(seconds=got.sequence * 2)
                assert abs((got.start - truth).total_seconds()) < 0.25
                assert got.delay == 0.0
        assert abs((got.measured_at - datetime.now(UTC)).total_seconds()) < 5
