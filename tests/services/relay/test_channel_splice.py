"""A channel's timeline (pure): parsing media playlists, splicing streams with the numbering
carried on, the join placed in time, checked with the m3u8 library and by properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay.channel_splice import SpliceError, Timeline, parse

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def live(name: str, first: int, count: int = 6, *, dates: bool = False, key: str = "",
         target: int = 2, disc_at: int | None = None) -> str:
    """A live media playlist of ``name`` whose segment ``seq`` is ``{name}/m/{seq}.ts``."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
             f"#EXT-X-MEDIA-SEQUENCE:{first}", "#EXT-X-DISCONTINUITY-SEQUENCE:7"]
    if key:
        lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{key}"')
    for seq in range(first, first + count):
        if seq == disc_at:
            lines.append("#EXT-X-DISCONTINUITY")
        if dates and seq == first:
            when = EPOCH + timedelta(seconds=seq * target)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{when.isoformat(timespec='milliseconds')}")
        lines += [f"#EXTINF:{target}.000,", f"{name}/m/{seq}.ts"]
    return "\n".join(lines) + "\n"


def uris(text: str) -> list[str]:
    return [s.uri for s in m3u8.loads(text).segments]


def test_a_media_playlist_is_parsed_with_its_context() -> None:
    """Sequence numbers, durations, key, discontinuities, dates counted on, end."""
    text = live("a", 100, 3, dates=True, key="k/1.key", disc_at=101) + "#EXT-X-ENDLIST\n"
    media = parse(text)
    assert [s.seq for s in media.segments] == [100, 101, 102]
    assert media.target == 2
    assert media.ended
    assert all(s.key.endswith('URI="k/1.key"') for s in media.segments)
    assert [s.discontinuity for s in media.segments] == [False, True, False]
    start = (EPOCH + timedelta(seconds=200)).timestamp()
    assert [s.pdt for s in media.segments] == [start, start + 2, start + 4]
    assert media.segments[0].lines[-1] == "a/m/100.ts"


@pytest.mark.parametrize("bad", ["", "hello", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n",
                                 "#EXTM3U\nseg.ts\n", "#EXTM3U\n#EXT-X-TARGETDURATION:x\n"])
def test_what_is_not_a_media_playlist_is_refused(bad: str) -> None:
    with pytest.raises(SpliceError):
        parse(bad)


def test_refreshes_of_one_stream_append_only_new_segments() -> None:
    """The window slides as upstream's does; numbers are the channel's own, from 0."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100)), 0.0)
    timeline.feed("a", parse(live("a", 102)), 4.0)
    out = m3u8.loads(timeline.render())
    assert out.media_sequence == 2
    assert uris(timeline.render()) == [f"a/m/{n}.ts" for n in range(102, 108)]
    assert not any(s.discontinuity for s in out.segments)
    assert out.discontinuity_sequence == 0


def test_a_switch_keeps_both_sides_of_the_join_and_marks_it() -> None:
    """Old segments stay in the window after a switch (a player a few segments behind finds
    them), the new stream follows with a discontinuity, the numbering carries on."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100)), 0.0)  # a/100..105, numbers 0..5
    timeline.feed("b", parse(live("b", 900)), 2.0)  # one target duration later
    text = timeline.render()
    out = m3u8.loads(text)
    assert out.media_sequence == 1
    assert uris(text) == [*(f"a/m/{n}.ts" for n in range(101, 106)), "b/m/905.ts"]
    assert [s.discontinuity for s in out.segments] == [False] * 5 + [True]
    # Later the join leaves the window: the discontinuity sequence counts it.
    for i in range(1, 8):
        timeline.feed("b", parse(live("b", 900 + i)), 2.0 + 2 * i)
    later = m3u8.loads(timeline.render())
    assert later.discontinuity_sequence == 1
    assert not any(s.discontinuity for s in later.segments)
    assert later.media_sequence + len(later.segments) - 1 == 5 + 8


def test_the_join_follows_the_clock() -> None:
    """Switching 3 target durations after the last old segment appeared: the new stream joins
    3 segments behind its live edge (the broadcast went on meanwhile)."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100)), 0.0)
    timeline.feed("b", parse(live("b", 200)), 6.0)
    assert uris(timeline.render())[-3:] == ["b/m/203.ts", "b/m/204.ts", "b/m/205.ts"]


def test_program_date_times_place_the_join_exactly() -> None:
    """When both streams state dates that agree with the clock, the segment after the last
    one served (by date) comes next, even if the clock estimate is one off."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100, dates=True)), 0.0)  # up to 105
    # By the clock (3.2 s ~ 2 segments) the join would be 107; the dates say 106.
    timeline.feed("b", parse(live("b", 102, dates=True)), 3.2)  # 102..107
    assert uris(timeline.render())[-3:] == ["a/m/105.ts", "b/m/106.ts", "b/m/107.ts"]


def test_dates_of_another_clock_are_ignored() -> None:
    """Dates an hour off the clock estimate are not trusted: the clock places the join."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100, dates=True)), 0.0)
    timeline.feed("b", parse(live("b", 2000, dates=True)), 2.0)
    assert uris(timeline.render())[-1] == "b/m/2005.ts"
    assert uris(timeline.render())[-2] == "a/m/105.ts"


def test_keys_are_restated_when_they_change_or_stop() -> None:
    """An encrypted stream joined by a clear one: METHOD=NONE at the join; the first segment of
    the window always has its key stated."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100, key="k/1.key")), 0.0)
    timeline.feed("b", parse(live("b", 10)), 2.0)
    lines = timeline.render().split("\n")
    assert lines.index('#EXT-X-KEY:METHOD=AES-128,URI="k/1.key"') < lines.index("a/m/101.ts")
    assert lines.index("#EXT-X-KEY:METHOD=NONE") < lines.index("b/m/15.ts")


def test_segments_missed_while_unwatched_are_marked() -> None:
    """A stream fed again after a gap (nobody watched): the content jumps, so a discontinuity."""
    timeline = Timeline()
    timeline.feed("a", parse(live("a", 100)), 0.0)
    timeline.feed("a", parse(live("a", 300)), 400.0)
    out = m3u8.loads(timeline.render())
    assert out.segments[0].discontinuity
    assert out.segments[0].uri == "a/m/300.ts"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3),
                          st.integers(1, 8)), min_size=1, max_size=40))
def test_numbers_always_name_the_same_segment(feeds: list[tuple[str, int, int]]) -> None:
    """Whatever is fed, in whatever order: a channel number names one segment for ever, with one
    discontinuity number; numbers only grow; the window is never empty once fed."""
    timeline = Timeline()
    heads = {"a": 100, "b": 5000, "c": 0}
    seen: dict[int, tuple[str, int]] = {}
    now = 0.0
    for source, advance, count in feeds:
        now += 2.0
        heads[source] += advance
        timeline.feed(source, parse(live(source, heads[source], count)), now)
        out = m3u8.loads(timeline.render())
        assert out.segments
        dseq = out.discontinuity_sequence or 0
        for i, seg in enumerate(out.segments):
            dseq += 1 if seg.discontinuity else 0
            assert seen.setdefault(out.media_sequence + i, (seg.uri, dseq)) == (seg.uri, dseq)
