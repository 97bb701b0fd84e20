"""Wall-clock time in every relayed media playlist: ``EXT-X-PROGRAM-DATE-TIME`` stamped where the
upstream has none. Pure: playlist text and the stream's clock in, text out.

A playlist with any program date-time of its own is left as it is (the origin's time is kept).
Otherwise each segment ``n`` gets ``start + (n - sequence) * period`` of the stream's anchor
(:class:`shared.streams.StreamClock`, measured by the extractor and shared through the stream
record), computed in whole milliseconds: every relay replica, every refresh and every viewer
gets the same time for the same segment, by construction. Sequence numbers are the upstream's
(stamp before the continuity splice renumbers them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from shared.streams import StreamClock

TAG: Final = "#EXT-X-PROGRAM-DATE-TIME:"
_SEQ: Final = "#EXT-X-MEDIA-SEQUENCE:"


def date_of(clock: StreamClock, sequence: int) -> int:
    """Milliseconds since the epoch at which segment ``sequence`` starts, by ``clock``."""
    start_ms = round(clock.start.timestamp() * 1000)
    return start_ms + round((sequence - clock.sequence) * clock.period * 1000)


def _tag(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{TAG}{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def stamp(text: str, clock: StreamClock | None) -> str:
    """``text`` with a program date-time before each segment, if it has none and ``clock``
    says when its segments started; else ``text`` itself."""
    if clock is None or TAG in text or "#EXTINF:" not in text:
        return text
    lines = text.split("\n")
    sequence = 0
    for line in lines:
        if line.startswith(_SEQ):
            digits = line[len(_SEQ):].strip()
            sequence = int(digits) if digits.isdigit() else 0
            break
    out: list[str] = []
    for line in lines:
        if line.startswith("#EXTINF:"):
            out.append(_tag(date_of(clock, sequence)))
            sequence += 1
        out.append(line)
    return "\n".join(out)
