"""The planner alone: target phases, catch-up steps, reschedules, cancellations."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from services.scheduler.planner import Timing, message_id, next_change, plan, plan_session, target
from shared.calendar import CalendarEntry, CalendarFile, sessions
from shared.sessions import Cancelled, Ended, Live, Phase, Rescheduled, Scheduled, Upcoming, phase_of
from tests.services.scheduler.calendars import at, two_weekends

TIMING = Timing()


def entries(**kw: object) -> list[CalendarEntry]:
    return sessions(msgspec.convert(two_weekends(**kw), CalendarFile))  # type: ignore[arg-type]


def race() -> CalendarEntry:
    return next(e for e in entries() if e.session.key == "2026.imola.race")


def test_target_phase_follows_lead_time_start_and_grace() -> None:
    """scheduled until start-lead, upcoming until start, live until end+grace, then ended."""
    s = race().session
    assert s.start is not None
    assert s.end == s.start + timedelta(hours=2)
    assert target(s, s.start - timedelta(minutes=31), TIMING) is Phase.SCHEDULED
    assert target(s, s.start - timedelta(minutes=30), TIMING) is Phase.UPCOMING
    assert target(s, s.start, TIMING) is Phase.LIVE
    assert target(s, s.end + timedelta(minutes=14), TIMING) is Phase.LIVE
    assert target(s, s.end + timedelta(minutes=15), TIMING) is Phase.ENDED


def test_a_late_first_sight_publishes_the_path_up_to_now() -> None:
    """Seen first while live: scheduled, upcoming, live, each stamped with its own instant."""
    s = race().session
    assert s.start is not None
    events = plan_session(race(), None, s.start + timedelta(minutes=5), TIMING)
    assert [type(e) for e in events] == [Scheduled, Upcoming, Live]
    assert events[1].at == s.start - timedelta(minutes=30)
    assert events[2].at == s.start


def test_a_session_over_before_first_sight_only_says_ended() -> None:
    """A newcomer learns the state of past sessions, not a replay of their history."""
    s = race().session
    assert s.end is not None
    assert [type(e) for e in plan_session(race(), None, s.end + timedelta(days=3), TIMING)] == [Ended]


def test_catch_up_publishes_exactly_the_missed_steps() -> None:
    """Known as upcoming, now past the end: live then ended, nothing else."""
    s = race().session
    assert s.start is not None
    assert s.end is not None
    known = Upcoming(session=s, at=s.start - timedelta(minutes=30))
    events = plan_session(race(), known, s.end + timedelta(hours=1), TIMING)
    assert [type(e) for e in events] == [Live, Ended]
    assert plan_session(race(), events[-1], s.end + timedelta(days=1), TIMING) == []


def test_a_moved_start_is_a_reschedule_and_the_walk_restarts() -> None:
    """A new start time publishes rescheduled (with the old time), then what is due at the new one."""
    old = race().session
    new_entry = next(e for e in entries(race_start=at(17, 14)) if e.session.key == "2026.imola.race")
    known = Upcoming(session=old, at=at(17, 12, 30))
    events = plan_session(new_entry, known, at(17, 12, 45), TIMING)
    assert [type(e) for e in events] == [Rescheduled]
    assert isinstance(events[0], Rescheduled)
    assert events[0].previous_start == old.start
    assert events[0].session.start == at(17, 14)


def test_cancelled_and_removed_sessions_are_cancelled_once() -> None:
    """A cancelled flag or a session gone from a complete calendar publishes cancelled once."""
    now = at(10, 0)
    known = {e.session.key: (Ended if "miami" in e.session.key else Scheduled)(session=e.session, at=now)
             for e in entries()}
    due = plan(entries(fp3_cancelled=True, without_fp2=True), known, now, TIMING, season=2026)
    assert [(type(e), e.session.key) for e in due] == [
        (Cancelled, "2026.imola.practice-3"), (Cancelled, "2026.imola.practice-2")]
    assert {e.reason for e in due if isinstance(e, Cancelled)} == {
        "cancelled in the calendar", "removed from the calendar"}
    # An incomplete calendar (source failed, last good in force) never cancels by absence.
    assert plan(entries(without_fp2=True), known, now, TIMING, season=None) == []


def test_message_ids_are_deterministic_per_session_phase_and_start() -> None:
    """Same session, phase and start: same id; a moved start: a different id."""
    s = race().session
    a = message_id(Live(session=s, at=at(17, 13)))
    assert a == message_id(Live(session=s, at=at(17, 13, 1)))
    assert a == "2026.imola.race:live:2026-05-17T13:00:00+00:00"
    moved = msgspec.structs.replace(s, start=at(17, 14))
    assert message_id(Live(session=moved, at=at(17, 14))) != a
    assert phase_of(Live(session=s, at=at(17, 13))) is Phase.LIVE


def test_next_change_is_the_nearest_transition() -> None:
    """The loop sleeps until exactly the next start-lead, start or end+grace."""
    assert next_change(entries(), at(1, 0), TIMING) == at(1, 16)
    assert next_change(entries(), at(1, 16), TIMING) == at(1, 16, 30)
    assert next_change(entries(), at(18, 0), TIMING) is None


def test_an_ended_session_changes_only_when_it_is_run_again() -> None:
    """Ended is final for the same start; a new start later on walks the life cycle again."""
    s = race().session
    assert s.end is not None
    done = Ended(session=s, at=s.end)
    assert plan_session(race(), done, s.end + timedelta(days=1), TIMING) == []
    again = next(e for e in entries(race_start=at(24, 13)) if e.session.key == "2026.imola.race")
    events = plan_session(again, done, at(24, 13, 5), TIMING)
    assert [type(e) for e in events] == [Rescheduled, Upcoming, Live]
