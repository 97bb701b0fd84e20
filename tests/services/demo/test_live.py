"""Live playlists over the looping demo media (pure, with a fake clock)."""

from __future__ import annotations

from datetime import timedelta

import m3u8
from hypothesis import given
from hypothesis import strategies as st

from services.demo import live
from services.demo.media import renditions
from tests.conftest import FakeClock

R = renditions()[0]


def test_master_lists_every_rendition_with_measured_bandwidth() -> None:
    """The master playlist parses (m3u8 as oracle) to both renditions, highest first."""
    parsed = m3u8.loads(live.master_playlist(renditions()))
    assert [p.uri for p in parsed.playlists] == ["360p/index.m3u8", "180p/index.m3u8"]
    assert parsed.playlists[0].stream_info.resolution == (640, 360)
    assert parsed.playlists[0].stream_info.bandwidth > parsed.playlists[1].stream_info.bandwidth > 0


def test_media_sequence_advances_with_the_clock(clock: FakeClock) -> None:
    """Every segment duration that passes moves the window by one segment."""
    first = m3u8.loads(live.media_playlist(R, clock.now()))
    clock.advance(R.segment_seconds)
    second = m3u8.loads(live.media_playlist(R, clock.now()))
    assert second.media_sequence == first.media_sequence + 1
    assert len(first.segments) == len(second.segments) == live.WINDOW
    assert not first.is_endlist
    assert second.segments[-2].uri == first.segments[-1].uri


@given(st.floats(min_value=0, max_value=10 * 365 * 86400))
def test_window_is_consistent_at_any_instant(offset: float) -> None:
    """At any instant: sequence numbers are contiguous, discontinuities mark each loop wrap."""
    now = live.EPOCH + timedelta(seconds=offset + 60)
    text = live.media_playlist(R, now)
    parsed = m3u8.loads(text)
    seqs = [int(s.uri.removesuffix(".ts")) for s in parsed.segments]
    assert seqs == list(range(parsed.media_sequence, parsed.media_sequence + len(seqs)))
    assert parsed.discontinuity_sequence == seqs[0] // R.segments
    for seg, seq in zip(parsed.segments, seqs, strict=True):
        assert seg.discontinuity == (seq % R.segments == 0 and seq != seqs[0])
        assert live.segment_file(R, seq, now) == R.folder / f"{seq % R.segments}.ts"


def test_future_and_long_gone_segments_are_not_served(clock: FakeClock) -> None:
    """Only published segments exist: nothing ahead of the live edge, nothing long expired."""
    edge = live.live_edge(clock.now(), R.segment_seconds)
    assert live.segment_file(R, edge + 1, clock.now()) is None
    assert live.segment_file(R, edge - 10 * live.WINDOW, clock.now()) is None
    assert live.segment_file(R, edge, clock.now()) is not None


def test_demo_media_is_small_enough_to_ship() -> None:
    """All the demo media together stays under 3 MB."""
    total = sum(p.stat().st_size for p in (R.folder.parent).rglob("*") if p.is_file())
    assert total < 3_000_000
