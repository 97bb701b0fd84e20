"""Keeping viewers playing across a re-resolve: when a stream's upstream URL changes, the
playlist a viewer follows is served from the new upstream with its media sequence renumbered to
continue where the old one stopped, an ``EXT-X-DISCONTINUITY`` before the first new segment
(timestamps and encoder settings may differ) and the discontinuity sequence continued too.
Pure functions over playlist text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_SEQ: Final = re.compile(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", re.M)
_DSEQ: Final = re.compile(r"^#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)", re.M)


@dataclass(frozen=True)
class Shift:
    """How a viewer-facing playlist maps its current upstream's numbering.

    ``offset`` is added to media sequence numbers and ``disc_offset`` to discontinuity numbers;
    ``first`` is the upstream sequence number of the first segment after the switch, which gets
    the ``EXT-X-DISCONTINUITY`` tag while it is in the window.
    """

    offset: int = 0
    disc_offset: int = 0
    first: int = -1


@dataclass(frozen=True)
class Position:
    """Where a served playlist ended: its last segment's sequence and discontinuity numbers."""

    sequence: int
    discontinuity: int


def _number(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return int(match[1]) if match else 0


def end_of(text: str) -> Position:
    """The last segment's sequence and discontinuity numbers of a (served) media playlist."""
    lines = text.split("\n")
    segments = sum(1 for line in lines if line.startswith("#EXTINF:"))
    tags = sum(1 for line in lines if line in {"#EXT-X-DISCONTINUITY", "#EXT-X-DISCONTINUITY\r"})
    return Position(_number(_SEQ, text) + segments - 1, _number(_DSEQ, text) + tags)


def switch(served: Position, new_text: str) -> Shift:
    """Continue a viewer's numbering (it last got ``served``) on a new upstream playlist."""
    first = _number(_SEQ, new_text)
    return Shift(offset=served.sequence + 1 - first,
                 disc_offset=served.discontinuity + 1 - _number(_DSEQ, new_text), first=first)


def apply(text: str, shift: Shift) -> str:
    """Renumber a media playlist of the new upstream and mark the switch point."""
    if shift == Shift():
        return text
    upstream_first = _number(_SEQ, text)
    at_switch = upstream_first <= shift.first
    # While the switch segment opens the window, the window starts in the old numbering.
    dseq = _number(_DSEQ, text) + shift.disc_offset - (1 if at_switch else 0)
    out: list[str] = []
    seq = upstream_first
    for line in text.split("\n"):
        if line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            continue  # written once, next to the media sequence
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            out.append(f"#EXT-X-MEDIA-SEQUENCE:{upstream_first + shift.offset}")
            out.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{dseq}")
            continue
        if line.startswith("#EXTINF:"):
            if seq == shift.first:
                out.append("#EXT-X-DISCONTINUITY")
            seq += 1
        out.append(line)
    return "\n".join(out)
