"""The relay's program date-time stamping (pure): every segment of a playlist without one gets
the time its stream's shared anchor gives it; playlists with the origin's own time are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.demo import live
from services.demo.media import renditions
from services.relay.clock import TAG, date_of, stamp
from shared.streams import StreamClock, TimeSource

R = renditions()[0]
NOW = live.EPOCH + timedelta(days=300, seconds=17.3)
CLOCK = StreamClock(source=TimeSource.STAMPED, sequence=12_960_001,
                    start=live.EPOCH + timedelta(seconds=12_960_001 * 2 + 0.137), period=2.0,
                    target_duration=2, measured_at=NOW)


def dates(text: str) -> dict[int, str]:
    """Sequence number -> the program date-time before it."""
    found, seq, pending = {}, 0, ""
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(line.split(":")[1])
        elif line.startswith(TAG):
            pending = line[len(TAG):]
        elif line.startswith("#EXTINF"):
            found[seq], pending, seq = pending, "", seq + 1
    return found


def test_every_segment_of_a_playlist_without_time_is_stamped_from_the_anchor() -> None:
    """Segment n starts at start + (n - sequence) * period, to the millisecond, in UTC."""
    text = live.media_playlist(R, NOW, dates=False)
    assert TAG not in text
    stamped = dates(stamp(text, CLOCK))
    assert len(stamped) == live.WINDOW
    assert all(stamped.values())
    for seq, value in stamped.items():
        expected = live.EPOCH + timedelta(seconds=seq * 2 + 0.137)
        assert value == expected.strftime("%Y-%m-%dT%H:%M:%S.") + "137Z"
        assert datetime.fromisoformat(value) == expected


def test_the_origins_own_time_is_kept() -> None:
    """A playlist with any program date-time of its own is relayed as it is."""
    text = live.media_playlist(R, NOW)
    assert stamp(text, CLOCK) is text


def test_without_a_clock_nothing_is_stamped() -> None:
    text = live.media_playlist(R, NOW, dates=False)
    assert stamp(text, None) is text


@given(st.integers(min_value=0, max_value=600), st.integers(min_value=1, max_value=600))
def test_a_segment_keeps_its_time_across_refreshes_and_replicas(first: float, later: float) -> None:
    """Two windows (two refreshes, or two relays fetching at different moments) give every
    segment they share the same time: the stamp depends on the segment and the anchor only."""
    a = dates(stamp(live.media_playlist(R, NOW + timedelta(seconds=first), dates=False), CLOCK))
    b = dates(stamp(live.media_playlist(R, NOW + timedelta(seconds=first + later), dates=False),
                    CLOCK))
    shared = a.keys() & b.keys()
    assert all(a[seq] == b[seq] for seq in shared)


def test_dates_are_whole_milliseconds_and_odd_periods_do_not_drift() -> None:
    """A 6.006 s period: segment 1,000 after the anchor is 6,006 s later, exactly."""
    clock = StreamClock(source=TimeSource.STAMPED, sequence=5, period=6.006, measured_at=NOW,
                        start=datetime(2026, 5, 24, 13, 0, 0, 250_000, tzinfo=UTC))
    assert date_of(clock, 1005) - date_of(clock, 5) == 6_006_000
    assert date_of(clock, 4) == date_of(clock, 5) - 6006
