"""A channel's media playlist as one continuous timeline fed by whichever stream is on air.
Pure: playlist text and times in, playlist text out.

Each slot of a channel keeps a :class:`Timeline`: the segments served lately, numbered by the
channel (not by any upstream), with their ``EXT-X-KEY``/``EXT-X-MAP`` context. Refreshes of the
stream on air append its new segments. A switch to another stream (or to another upstream of the
same stream, after a re-resolve) appends the new stream's segments after the ones already served,
with ``EXT-X-DISCONTINUITY`` at the join, so the media and discontinuity sequences carry on
(the rule of :mod:`services.relay.continuity`, kept over a window that holds both sides of the
join): a player that is a few segments behind still finds the old ones, and never reloads.

Where the new stream joins is chosen by time: the stream on air published its last segment at
``last_at``; the new stream's segment that follows it in time is about ``(now - last_at) /
target`` segments behind its live edge (sources of one broadcast advance together), so a
switch neither replays nor skips more than a segment. When both streams state program
date-times that agree with that estimate, they place the join exactly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Final

#: Segments a channel's window holds at least (players start three from the end).
MIN_WINDOW: Final = 3
#: Tags of a media playlist's header, or of LL-HLS parts, that a channel does not pass on
#: (it writes its own header, and serves whole segments only).
_DROPPED: Final = ("#EXTM3U", "#EXT-X-VERSION:", "#EXT-X-TARGETDURATION:", "#EXT-X-MEDIA-SEQUENCE:",
                   "#EXT-X-DISCONTINUITY-SEQUENCE:", "#EXT-X-PLAYLIST-TYPE:", "#EXT-X-ENDLIST",
                   "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-START:", "#EXT-X-SERVER-CONTROL:",
                   "#EXT-X-PART-INF:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:",
                   "#EXT-X-RENDITION-REPORT:", "#EXT-X-SKIP:", "#EXT-X-I-FRAMES-ONLY",
                   "#EXT-X-ALLOW-CACHE:")


class SpliceError(ValueError):
    """The text is not a media playlist a channel can play from."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment of an upstream playlist (its URI line already a relay URL)."""

    seq: int
    duration: float
    #: Its own lines: EXTINF, BYTERANGE, PROGRAM-DATE-TIME, GAP, ..., then the URI.
    lines: tuple[str, ...]
    #: The EXT-X-KEY and EXT-X-MAP lines in force for it ("" for none).
    key: str = ""
    map: str = ""
    #: An EXT-X-DISCONTINUITY came before it upstream.
    discontinuity: bool = False
    #: Its program date-time (POSIX seconds), stated or counted on from the last one stated.
    pdt: float | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """A parsed media playlist."""

    target: float
    segments: tuple[Segment, ...]
    #: ``EXT-X-ENDLIST`` or ``EXT-X-PLAYLIST-TYPE:VOD``: not (or no longer) live.
    ended: bool
    version: int = 3

    @property
    def last_sequence(self) -> int:
        return self.segments[-1].seq if self.segments else -1


def parse(text: str) -> Media:  # noqa: PLR0912 - one pass, a branch per tag
    """Parse a media playlist; raise :class:`SpliceError` if it is none (a master, garbage)."""
    if not text.removeprefix("\ufeff").startswith("#EXTM3U"):
        raise SpliceError("not an HLS playlist")
    if "#EXT-X-STREAM-INF:" in text:
        raise SpliceError("a master playlist where a media playlist belongs")
    target, first, version, ended = 0.0, 0, 3, False
    key = map_ = ""
    pending: list[str] = []
    discontinuity = False
    duration: float | None = None
    pdt: float | None = None
    segments: list[Segment] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#EXT-X-TARGETDURATION:"):
                target = _float(line, "#EXT-X-TARGETDURATION:")
            elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                first = int(_float(line, "#EXT-X-MEDIA-SEQUENCE:"))
            elif line.startswith("#EXT-X-VERSION:"):
                version = int(_float(line, "#EXT-X-VERSION:"))
            elif line == "#EXT-X-ENDLIST" or line.upper() == "#EXT-X-PLAYLIST-TYPE:VOD":
                ended = True
            elif line == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif line.startswith("#EXT-X-KEY:"):
                key = "" if "METHOD=NONE" in line else line
            elif line.startswith("#EXT-X-MAP:"):
                map_ = line
            elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdt = _date(line[len("#EXT-X-PROGRAM-DATE-TIME:"):])
                pending.append(line)
            elif line.startswith("#EXTINF:"):
                duration = _float(line.split(",", 1)[0], "#EXTINF:")
                pending.append(line)
            elif line.startswith("#EXT") and not line.startswith(_DROPPED):
                pending.append(line)
            continue
        if duration is None:
            raise SpliceError("a segment without #EXTINF")
        segments.append(Segment(seq=first + len(segments), duration=duration,
                                lines=(*pending, line), key=key, map=map_,
                                discontinuity=discontinuity, pdt=pdt))
        if pdt is not None:
            pdt += duration
        pending, discontinuity, duration = [], False, None
    if target <= 0:
        target = max((s.duration for s in segments), default=0.0)
    if target <= 0:
        raise SpliceError("no #EXT-X-TARGETDURATION and no segments")
    return Media(target=target, segments=tuple(segments), ended=ended, version=version)


def _date(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _float(line: str, tag: str) -> float:
    try:
        return float(line[len(tag):].strip())
    except ValueError as exc:
        raise SpliceError(f"bad {tag} value") from exc


@dataclass(frozen=True, slots=True)
class Entry:
    """A segment as the channel serves it: its channel number and where it came from."""

    number: int
    segment: Segment
    discontinuity: bool
    source: str


class Timeline:
    """The segments one slot of a channel served lately, numbered by the channel."""

    def __init__(self, first_number: int = 0) -> None:
        self.entries: deque[Entry] = deque()
        self.next_number = first_number
        #: Discontinuity sequence number of the first entry in the window.
        self.dseq = 0
        self.source: str | None = None
        self.last_seq = -1
        #: When the newest entry was appended (the caller's clock).
        self.last_at: float | None = None
        self.target = 0.0
        self.version = 3
        self.window = MIN_WINDOW

    def feed(self, source: str, media: Media, now: float) -> int:
        """Append what ``media`` (from ``source``: a stream and its upstream) adds; return how
        many segments were appended."""
        segments = media.segments
        if not segments:
            return 0
        flag_first = False
        if source == self.source and segments[-1].seq >= self.last_seq:
            new = [s for s in segments if s.seq > self.last_seq]
            # Segments missed while nobody fed the timeline: the content jumps.
            flag_first = bool(new) and new[0].seq > self.last_seq + 1
        elif not self.entries:
            new = list(segments)
        else:
            new = list(segments[self.join(media, now):])
            flag_first = True
        self.source = source
        self.target = max(self.target, media.target)
        self.version = max(self.version, media.version)
        self.window = max(MIN_WINDOW, len(segments))
        for i, seg in enumerate(new):
            self.entries.append(Entry(self.next_number, seg,
                                      seg.discontinuity or (flag_first and i == 0), source))
            self.next_number += 1
            self.last_seq = seg.seq
        if new:
            self.last_at = now
        while len(self.entries) > self.window:
            if self.entries.popleft().discontinuity:
                self.dseq += 1
        return len(new)

    def join(self, media: Media, now: float) -> int:
        """The index of ``media``'s segment that follows the last one served, in time.

        By program date-time when both sides state it and it roughly agrees with the clock
        (sources of one broadcast may stamp it from unrelated clocks), else by the clock."""
        segments = media.segments
        count = len(segments)
        if self.last_at is None:
            return 0
        behind = round((now - self.last_at) / max(media.target, 0.5))
        by_clock = min(max(count - max(behind, 1), 0), count - 1)
        last = self.entries[-1].segment if self.entries else None
        if last is None or last.pdt is None or any(s.pdt is None for s in segments):
            return by_clock
        end = last.pdt + last.duration - min(0.5, last.duration / 2)
        by_date = next((i for i, s in enumerate(segments) if (s.pdt or 0.0) >= end), count - 1)
        return by_date if abs(by_date - by_clock) <= 2 else by_clock

    def render(self) -> str:
        """The media playlist a viewer gets (URIs as they were fed)."""
        out = ["#EXTM3U", f"#EXT-X-VERSION:{self.version}",
               f"#EXT-X-TARGETDURATION:{math.ceil(self.target) or 1}",
               f"#EXT-X-MEDIA-SEQUENCE:{self.entries[0].number if self.entries else self.next_number}",
               f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.dseq}"]
        key = map_ = ""
        for entry in self.entries:
            seg = entry.segment
            if entry.discontinuity:
                out.append("#EXT-X-DISCONTINUITY")
            if seg.key != key:
                out.append(seg.key or "#EXT-X-KEY:METHOD=NONE")
                key = seg.key
            if seg.map and seg.map != map_:
                out.append(seg.map)
                map_ = seg.map
            out.extend(seg.lines)
        return "\n".join(out) + "\n"
