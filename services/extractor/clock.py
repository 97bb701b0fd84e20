"""A stream's wall-clock time and latency, measured: when did its newest segment appear upstream?

The extractor watches the edge of a stream's media playlist (its first variant's): it reloads
the playlist every ``step`` seconds until a new segment appears, and takes the moment between
the last reload without it and the first with it as the segment's sighting (good to about half
a step). From a sighting:

* the live-edge delay is the sighting minus the segment's wall-clock end: the end its
  ``EXT-X-PROGRAM-DATE-TIME`` says (carried forward over ``EXTINF`` durations from the last
  tag) where the origin has one, else the time Slipstream stamps;
* the anchor (:class:`shared.streams.StreamClock`) the relays stamp from: kept while the
  sightings agree with it within :func:`tolerance` (so stamps stay put across probes and
  re-resolves), else moved to the new segment. For a stream without program date-times a new
  anchor starts the segment at its sighting minus its duration: the segment ends when it
  appears, which is true for an origin that publishes segments as they are filmed.

:func:`timeline` and :func:`update` are pure; :func:`watch_edge` does the reloads through a
``load`` function it is given (one fetch of the playlist text).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from shared.streams import StreamClock, TimeSource

#: A clock whose delay moved less than this many seconds is not worth a KV write.
DELAY_STEP: Final = 0.5
_PDT: Final = "#EXT-X-PROGRAM-DATE-TIME:"


class ClockError(Exception):
    """No sighting: the playlist did not advance in time, ended, or is unreadable."""


@dataclass(frozen=True)
class Timeline:
    """What a media playlist says about time: its newest segment and what dates it."""

    first_sequence: int
    target_duration: float
    durations: tuple[float, ...]
    #: Wall-clock start of the newest segment from the playlist's program date-times, if any.
    newest_start: datetime | None
    ended: bool

    @property
    def newest(self) -> int:
        """Media sequence number of the newest segment."""
        return self.first_sequence + len(self.durations) - 1

    @property
    def period(self) -> float:
        """Mean segment duration of the window, in whole milliseconds."""
        return round(sum(self.durations) / len(self.durations), 3)


def _date(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def timeline(text: str) -> Timeline:
    """Read a media playlist's timing; :class:`ClockError` if it has no segments."""
    first, target, ended = 0, 0.0, False
    durations: list[float] = []
    date: datetime | None = None  # start of the segment the next EXTINF opens
    newest: datetime | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            try:
                duration = float(line[8:].split(",", 1)[0])
            except ValueError as exc:
                raise ClockError(f"unreadable duration {line[:40]!r}") from exc
            durations.append(duration)
            newest = date
            date = None if date is None else date + timedelta(seconds=duration)
        elif line.startswith(_PDT):
            date = _date(line[len(_PDT):]) or date
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            first = int(line.split(":", 1)[1] or 0)
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1] or 0)
        elif line == "#EXT-X-ENDLIST":
            ended = True
    if not durations:
        raise ClockError("the playlist has no segments")
    return Timeline(first_sequence=first, target_duration=target, durations=tuple(durations),
                    newest_start=newest, ended=ended)


@dataclass(frozen=True)
class Sighting:
    """A segment seen appearing: the playlist it first appeared in, and when (UTC seconds)."""

    timeline: Timeline
    at: float
    #: Half the uncertainty of ``at``, in seconds.
    error: float


def step_for(target: float) -> float:
    """Seconds between reloads while watching the edge: a tenth of a segment, 0.2 to 0.5 s."""
    return min(max(target / 10, 0.2), 0.5)


def tolerance(step: float) -> float:
    """How far (seconds) a sighting may be from the anchor's prediction and keep the anchor."""
    return max(0.5, 2 * step)


async def watch_edge(load: Callable[[], Awaitable[str]], *, wall: Callable[[], float] = time.time,
                     limit: float | None = None) -> Sighting:
    """Reload a media playlist until a new segment appears; when, and in which playlist.

    Waits at most ``limit`` seconds (one and a half target durations when not given)."""
    def mid(sent: float) -> float:
        return (sent + wall()) / 2  # the origin answered about half-way

    sent = wall()
    before = timeline(await load())
    last_seen = mid(sent)
    if before.ended:
        raise ClockError("the playlist has ended")
    step = step_for(before.target_duration or 2.0)
    deadline = sent + (limit if limit is not None else 1.5 * max(before.target_duration, 1.0) + 1)
    while wall() < deadline:
        await asyncio.sleep(step)
        sent = wall()
        now = timeline(await load())
        seen = mid(sent)
        if now.newest > before.newest:
            return Sighting(timeline=now, at=(last_seen + seen) / 2, error=(seen - last_seen) / 2)
        last_seen = seen
    raise ClockError(f"no new segment within {deadline - sent:.0f} s")


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(seconds, 3), UTC)


def predicted_start(clock: StreamClock, sequence: int) -> float:
    """Where an anchor puts the start of segment ``sequence`` (UTC seconds, whole ms), exactly
    as the relays stamp it."""
    start_ms = round(clock.start.timestamp() * 1000)
    return (start_ms + round((sequence - clock.sequence) * clock.period * 1000)) / 1000


def update(previous: StreamClock | None, sighting: Sighting) -> StreamClock:
    """The stream's clock after a sighting: the previous anchor while it agrees, and the delay."""
    line = sighting.timeline
    n, duration = line.newest, line.durations[-1]
    source = TimeSource.ORIGIN if line.newest_start is not None else TimeSource.STAMPED
    start = (line.newest_start.timestamp() if line.newest_start is not None
             else sighting.at - duration)
    fresh = StreamClock(source=source, sequence=n, start=_utc(start), period=line.period,
                        target_duration=line.target_duration, delay=0.0,
                        measured_at=_utc(sighting.at))
    clock = fresh
    if previous is not None and previous.source is source:
        allowed = tolerance(step_for(line.target_duration or 2.0))
        if abs(predicted_start(previous, n) - start) <= allowed:
            clock = msgspec.structs.replace(previous, target_duration=line.target_duration,
                                            measured_at=fresh.measured_at)
    # The origin's own time dates its segments; stamped time is the anchor's.
    end = (start if source is TimeSource.ORIGIN else predicted_start(clock, n)) + duration
    return msgspec.structs.replace(clock, delay=round(sighting.at - end, 3) + 0.0)  # never -0.0


def settled(old: StreamClock | None, new: StreamClock | None) -> StreamClock | None:
    """``old`` when ``new`` says nothing worth a KV write (same anchor, delay within
    :data:`DELAY_STEP`), else ``new``: the clock is refreshed at a bounded rate."""
    if old is None or new is None:
        return new
    same = msgspec.structs.replace(new, delay=old.delay, measured_at=old.measured_at) == old
    return old if same and abs(new.delay - old.delay) < DELAY_STEP else new
