"""Which stream a channel puts on air, and when it takes it off: a pure decision over what the
relay measured of each stream. No I/O, no clock of its own (``now`` is passed in), no NATS.

What is measured (:class:`Observed`, fed by the relay as it polls the stream on air and fetches
its segments for viewers): whether its media sequence advances, whether its playlist can be
fetched, whether it turned VOD or ended, its segment errors in the last minute, and how long a
segment takes to download against how long it plays. What the extractor says (the record's
health) and the operator's ``priority`` of the source complete it.

The stream on air is taken off when it is removed, dead (its record says so, or its playlist
failed :data:`DEAD_AFTER` times in a row), stalled (no new segment for two target durations),
keeps failing segments (:data:`ERRORS_TO_SWITCH` in a minute), or ended (a VOD or
``EXT-X-ENDLIST``). Hysteresis keeps this from flapping:

- a stream taken off for a failure is benched: not put back for :data:`BENCH` seconds, doubled at
  each new failure of the same stream (so an intermittent stream costs one switch, not a series);
- a healthy stream on air is left for a better one only when that one scores :data:`MARGIN`
  more, and only after :data:`HOLD` seconds on air; the source's priority alone (worth at most
  :data:`PRIORITY_POINTS`) never makes that margin.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from shared.channels import SwitchReason
from shared.streams import Health

#: Consecutive failed playlist fetches after which the stream on air counts as dead.
DEAD_AFTER: Final = 2
#: Target durations without a new segment after which a stream counts as stalled.
STALL_TARGETS: Final = 2.0
#: Segment errors within :data:`ERROR_WINDOW` seconds that take a stream off air.
ERRORS_TO_SWITCH: Final = 3
ERROR_WINDOW: Final = 60.0
#: Seconds a stream taken off air for a failure is not put back (doubled per repeat).
BENCH: Final = 120.0
MAX_BENCH: Final = 1800.0
#: Points a challenger must score above a healthy stream on air to replace it.
MARGIN: Final = 25.0
#: Seconds a stream stays on air before a better one may replace it (without a failure).
HOLD: Final = 60.0
PRIORITY_POINTS: Final = 10.0
HEALTH_POINTS: Final = {Health.OK: 100.0, Health.DEGRADED: 60.0, Health.RESOLVING: 40.0}
ERROR_POINTS: Final = 15.0
#: Download time over play time above which a stream loses points (1.0: as slow as it plays).
SLOW_FROM: Final = 0.5
SLOW_POINTS: Final = 80.0


@dataclass
class Observed:
    """What the relay measured of one stream (mutable; fed as playlists and segments come)."""

    target: float = 6.0
    #: The newest media sequence number seen, and when it last grew.
    last_sequence: int | None = None
    advanced_at: float | None = None
    ended: bool = False
    #: Consecutive failed playlist fetches, and the last failure's reason.
    playlist_failures: int = 0
    failure: str = ""
    errors: deque[float] = field(default_factory=deque)
    #: (when, download seconds / segment seconds) of recent segment downloads.
    speeds: deque[tuple[float, float]] = field(default_factory=deque)

    def playlist_ok(self, now: float, last_sequence: int, target: float, *, ended: bool) -> None:
        """A playlist of the stream was fetched: its newest segment's sequence number."""
        self.target = max(target, 0.5)
        self.ended = ended
        self.playlist_failures = 0
        if self.last_sequence is None or last_sequence > self.last_sequence \
                or last_sequence < self.last_sequence - 1000:  # renumbered: a new upstream
            self.advanced_at = now
        self.last_sequence = last_sequence

    def playlist_failed(self, now: float, reason: str) -> None:
        self.playlist_failures += 1
        self.failure = reason
        if self.advanced_at is None:
            self.advanced_at = now

    def segment_done(self, now: float, seconds: float, failed: bool) -> None:
        """A segment download finished (``failed``: with an error) after ``seconds``."""
        self._expire(now)
        if failed:
            self.errors.append(now)
        else:
            self.speeds.append((now, seconds / self.target))

    def _expire(self, now: float) -> None:
        while self.errors and self.errors[0] < now - ERROR_WINDOW:
            self.errors.popleft()
        while self.speeds and self.speeds[0][0] < now - ERROR_WINDOW:
            self.speeds.popleft()

    def recent_errors(self, now: float) -> int:
        self._expire(now)
        return len(self.errors)

    def slowness(self, now: float) -> float:
        """The median download time over play time of the last minute's segments (0: none)."""
        self._expire(now)
        if not self.speeds:
            return 0.0
        ordered = sorted(s for _, s in self.speeds)
        return ordered[len(ordered) // 2]

    def stalled(self, now: float) -> bool:
        return self.advanced_at is not None and now - self.advanced_at > STALL_TARGETS * self.target


@dataclass(frozen=True)
class Candidate:
    """A stream a channel may put on air: its record's health, its source's priority, and what
    the relay measured of it (``None``: nothing yet)."""

    stream: str
    health: Health = Health.OK
    priority: int = 0
    observed: Observed | None = None


@dataclass(frozen=True)
class Switch:
    """A decision: put ``to`` on air (``None``: nothing can be), taking ``previous`` off."""

    previous: str | None
    to: str | None
    reason: SwitchReason
    detail: str = ""


def trouble(c: Candidate, now: float, *, on_air: bool = True) -> tuple[SwitchReason, str] | None:
    """Why ``c`` must not be (or stay) on air, or ``None``. Its playlist is watched only while it
    is on air: for another stream (``on_air`` false) only its record and segments count."""
    obs = c.observed
    if c.health is Health.DEAD:
        return SwitchReason.DEAD, "the extractor reports the stream dead"
    if obs is None:
        return None
    errors = obs.recent_errors(now)
    if errors >= ERRORS_TO_SWITCH:
        return SwitchReason.ERRORS, f"{errors} segment errors in the last minute"
    if not on_air:
        return None
    if obs.playlist_failures >= DEAD_AFTER:
        return SwitchReason.DEAD, f"its playlist failed {obs.playlist_failures} times in a row " \
            f"({obs.failure})"
    if obs.ended:
        return SwitchReason.ENDED, "its playlist turned VOD or ended"
    if obs.stalled(now):
        assert obs.advanced_at is not None  # noqa: S101 - stalled() implies it
        return SwitchReason.STALLED, f"no new segment for {now - obs.advanced_at:.1f} s " \
            f"(target duration {obs.target:g} s)"
    return None


def score(c: Candidate, now: float, priorities: Sequence[int] = (), *,
          on_air: bool = False) -> float:
    """How good ``c`` is to have on air (higher is better; ``-inf``: not at all)."""
    if trouble(c, now, on_air=on_air) is not None or c.health not in HEALTH_POINTS:
        return -math.inf
    points = HEALTH_POINTS[c.health]
    obs = c.observed
    if obs is not None:
        points -= min(60.0, ERROR_POINTS * obs.recent_errors(now))
        points -= min(60.0, max(0.0, obs.slowness(now) - SLOW_FROM) * SLOW_POINTS)
    ranks = sorted(set(priorities))
    if len(ranks) > 1 and c.priority in ranks:
        points += PRIORITY_POINTS * ranks.index(c.priority) / (len(ranks) - 1)
    return points


@dataclass
class Picker:
    """The decisions of one channel: which stream is on air, who is benched until when."""

    on_air: str | None = None
    since: float = 0.0
    benched: dict[str, float] = field(default_factory=dict)
    strikes: dict[str, int] = field(default_factory=dict)

    def bench(self, stream: str, now: float) -> None:
        strikes = self.strikes.get(stream, 0) + 1
        self.strikes[stream] = strikes
        self.benched[stream] = now + min(MAX_BENCH, BENCH * 2 ** (strikes - 1))

    def _best(self, candidates: Mapping[str, Candidate], now: float, *,
              exclude: str | None) -> tuple[str | None, float]:
        priorities = [c.priority for c in candidates.values()]
        scored = [(score(c, now, priorities), c.stream) for c in candidates.values()
                  if c.stream != exclude]
        playable = [(s, sid) for s, sid in scored
                    if s > -math.inf and self.benched.get(sid, 0.0) <= now]
        if not playable:
            return None, -math.inf
        best = max(playable, key=lambda p: (p[0], p[1]))
        return best[1], best[0]

    def decide(self, now: float, candidates: Mapping[str, Candidate]) -> Switch | None:
        """What to do now: ``None`` to keep the stream on air, else a :class:`Switch` (already
        applied to this picker)."""
        current = self.on_air
        decision: Switch | None = None
        if current is None:
            best, _ = self._best(candidates, now, exclude=None)
            if best is not None:
                decision = Switch(None, best, SwitchReason.START)
        elif current not in candidates:
            best, _ = self._best(candidates, now, exclude=current)
            decision = Switch(current, best, SwitchReason.REMOVED, "the stream was removed")
        else:
            problem = trouble(candidates[current], now)
            if problem is not None:
                best, _ = self._best(candidates, now, exclude=current)
                # With nothing to switch to, a stall or errors may pass: stay. Dead or ended
                # does not: the channel goes off air.
                if best is not None or problem[0] in (SwitchReason.DEAD, SwitchReason.ENDED):
                    self.bench(current, now)
                    decision = Switch(current, best, *problem)
            elif now - self.since >= HOLD:
                priorities = [c.priority for c in candidates.values()]
                mine = score(candidates[current], now, priorities, on_air=True)
                best, theirs = self._best(candidates, now, exclude=current)
                if best is not None and theirs >= mine + MARGIN:
                    decision = Switch(current, best, SwitchReason.DEGRADED,
                                      f"scores {theirs:.0f} against {mine:.0f}")
        if decision is not None:
            self.on_air, self.since = decision.to, now
        return decision


@dataclass(frozen=True)
class Rendition:
    """A variant as a channel's slots see it: resolution and bandwidth (0/None: unknown)."""

    bandwidth: int = 0
    width: int | None = None
    height: int | None = None


def _distance(slot: Rendition, other: Rendition) -> tuple[float, float]:
    height = abs(math.log(other.height / slot.height)) if slot.height and other.height else 0.0
    rate = abs(math.log(other.bandwidth / slot.bandwidth)) \
        if slot.bandwidth and other.bandwidth else 0.0
    return height, rate


def match(slot: Rendition, variants: Sequence[Rendition]) -> int:
    """The index of the variant of another source that plays in ``slot``: the nearest
    resolution, then the nearest bandwidth (on a log scale: 720p is nearer 1080p than 360p)."""
    if not variants:
        raise ValueError("no variants to match")
    return min(range(len(variants)), key=lambda i: (*_distance(slot, variants[i]), i))
