"""The session life-cycle planner: which events are due, given the calendar, what was already
published (the ``sessions`` KV) and the time. Pure: no NATS, no clock of its own.

Each session walks ``scheduled -> upcoming -> live -> ended``. A session seen for the first time
publishes ``scheduled`` and every step up to where it is now (a session already over publishes
only ``ended``: a newcomer learns the state, not a replay of old history). A known session
publishes exactly the steps between its last published phase and now, so a restarted scheduler
catches up without repeating itself. A changed start time publishes ``rescheduled`` and the
walk restarts from ``scheduled``; a cancellation, or a session gone from a complete calendar,
publishes ``cancelled``. An ended session changes only if its start moves (it is run again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from shared.calendar import CalendarEntry
from shared.sessions import (
    Cancelled,
    Ended,
    Live,
    Phase,
    Rescheduled,
    Scheduled,
    Session,
    SessionEvent,
    Upcoming,
    phase_of,
)

PATH: Final = (Phase.SCHEDULED, Phase.UPCOMING, Phase.LIVE, Phase.ENDED)
_POSITION: Final = {Phase.SCHEDULED: 0, Phase.RESCHEDULED: 0, Phase.UPCOMING: 1, Phase.LIVE: 2,
                    Phase.ENDED: 3}


@dataclass(frozen=True, slots=True)
class Timing:
    """When transitions happen relative to a session's times."""

    lead: timedelta = timedelta(minutes=30)
    grace: timedelta = timedelta(minutes=15)


def target(session: Session, now: datetime, timing: Timing) -> Phase:
    """The phase a session should be in at ``now`` (to be confirmed: scheduled)."""
    if session.start is None or now < session.start - timing.lead:
        return Phase.SCHEDULED
    if now < session.start:
        return Phase.UPCOMING
    end = session.end or session.start
    if now < end + timing.grace:
        return Phase.LIVE
    return Phase.ENDED


def _step(phase: Phase, session: Session, now: datetime, timing: Timing) -> SessionEvent:
    # Each step carries the instant it took effect, so a late catch-up still says when.
    if phase is Phase.SCHEDULED:
        return Scheduled(session=session, at=now)
    if session.start is None:  # pragma: no cover - target() never goes past scheduled then
        raise ValueError(f"{session.key} has no start time")
    if phase is Phase.UPCOMING:
        return Upcoming(session=session, at=session.start - timing.lead)
    if phase is Phase.LIVE:
        return Live(session=session, at=session.start)
    return Ended(session=session, at=(session.end or session.start) + timing.grace)


def message_id(event: SessionEvent) -> str:
    """The deterministic ``Nats-Msg-Id`` of an event: (session, phase, start time)."""
    session = event.session
    start = session.start.isoformat() if session.start else "tbc"
    if isinstance(event, Rescheduled):
        before = event.previous_start.isoformat() if event.previous_start else "tbc"
        start = f"{before}->{start}"
    return f"{session.key}:{phase_of(event).value}:{start}"


def plan_session(entry: CalendarEntry, known: SessionEvent | None, now: datetime,
                 timing: Timing) -> list[SessionEvent]:
    """The events due for one session, in the order they must be published."""
    session = entry.session
    last = phase_of(known) if known is not None else None
    if last is Phase.ENDED and known is not None and known.session.start == session.start:
        return []
    if entry.cancelled:
        if last in (Phase.CANCELLED, Phase.ENDED):
            return []
        return [Cancelled(session=session, at=now, reason="cancelled in the calendar")]
    events: list[SessionEvent] = []
    position: int | None = None
    if known is not None and last is not None:
        # A new start after the end is a new occurrence (a demo re-run, a re-run session).
        if last in (Phase.CANCELLED, Phase.ENDED) or known.session.start != session.start:
            events.append(Rescheduled(session=session, at=now, previous_start=known.session.start,
                                      previous_end=known.session.end))
            position = 0
        else:
            position = _POSITION[last]
    goal = PATH.index(target(session, now, timing))
    if position is None:
        steps = [Phase.ENDED] if goal == PATH.index(Phase.ENDED) else list(PATH[: goal + 1])
    else:
        steps = list(PATH[position + 1: goal + 1])
    events.extend(_step(p, session, now, timing) for p in steps)
    return events


def plan(entries: Iterable[CalendarEntry], known: Mapping[str, SessionEvent], now: datetime,
         timing: Timing, *, season: int | None = None) -> list[SessionEvent]:
    """Every event due now, session by session in calendar order.

    With ``season`` (the calendar was loaded completely for it), known sessions of that season
    missing from the calendar are cancelled.
    """
    entries = list(entries)
    due: list[SessionEvent] = []
    for entry in entries:
        due.extend(plan_session(entry, known.get(entry.session.key), now, timing))
    if season is not None:
        present = {e.session.key for e in entries}
        for key, event in sorted(known.items()):
            if (event.session.season == season and key not in present
                    and phase_of(event) not in (Phase.ENDED, Phase.CANCELLED)):
                due.append(Cancelled(session=event.session, at=now,
                                     reason="removed from the calendar"))
    return due


def next_change(entries: Iterable[CalendarEntry], now: datetime, timing: Timing) -> datetime | None:
    """The next instant after ``now`` at which some session changes phase (``None``: never)."""
    upcoming: list[datetime] = []
    for entry in entries:
        s = entry.session
        if entry.cancelled or s.start is None:
            continue
        for instant in (s.start - timing.lead, s.start, (s.end or s.start) + timing.grace):
            if instant > now:
                upcoming.append(instant)
                break
    return min(upcoming, default=None)
