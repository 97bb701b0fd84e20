"""Renumbering across an upstream switch, alone (pure), checked with m3u8."""

from __future__ import annotations

import m3u8

from services.relay.continuity import Position, Shift, apply, end_of, switch


def playlist(first: int, count: int, dseq: int | None = None) -> str:
    head = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    if dseq is not None:
        head.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{dseq}")
    body = [f"#EXTINF:2.0,\n/r/m/{first + i}.ts" for i in range(count)]
    return "\n".join([*head, *body, ""])


def test_a_switch_continues_the_numbering_with_a_discontinuity() -> None:
    """Old upstream served up to 105; the new one starts at 7: the viewer sees 106 onwards."""
    served = end_of(playlist(100, 6, dseq=3))
    assert served == Position(sequence=105, discontinuity=3)
    new = playlist(7, 6, dseq=0)
    shift = switch(served, new)
    out = m3u8.loads(apply(new, shift))
    assert out.media_sequence == 106
    assert out.discontinuity_sequence == 3
    assert out.segments[0].discontinuity
    assert not any(s.discontinuity for s in out.segments[1:])
    # Two refreshes later the switch segment has left the window: numbering carries on.
    later = m3u8.loads(apply(playlist(9, 6, dseq=0), shift))
    assert later.media_sequence == 108
    assert later.discontinuity_sequence == 4
    assert not any(s.discontinuity for s in later.segments)
    assert [s.uri for s in later.segments] == [f"/r/m/{9 + i}.ts" for i in range(6)]


def test_no_switch_changes_nothing() -> None:
    """Without a switch the text is served exactly as rewritten."""
    text = playlist(100, 6)
    assert apply(text, Shift()) is text


def test_a_second_switch_counts_on() -> None:
    """Each switch adds one discontinuity and keeps sequence numbers increasing."""
    first = switch(Position(50, 0), playlist(0, 3))
    served = end_of(apply(playlist(0, 3), first))
    assert served == Position(53, 1)
    second = switch(served, playlist(900, 3, dseq=12))
    out = m3u8.loads(apply(playlist(900, 3, dseq=12), second))
    assert out.media_sequence == 54
    assert out.discontinuity_sequence == 1
    assert out.segments[0].discontinuity
