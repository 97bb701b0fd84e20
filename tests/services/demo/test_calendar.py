"""The demo calendar: something live now, something soon, past and future, stable re-runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from services.demo.calendar import demo_calendar, to_toml
from shared.calendar import CalendarFile, sessions


def test_demo_has_a_live_session_one_soon_and_past_and_future_ones() -> None:
    """At any minute of the hour: a live sprint, qualifying in minutes, past and TBC sessions."""
    for minute in (0, 29, 59):
        now = datetime(2026, 11, 24, 15, minute, 30, tzinfo=UTC)
        entries = sessions(demo_calendar(now))
        live = [e.session for e in entries
                if e.session.start and e.session.end and e.session.start <= now < e.session.end]
        assert [s.key for s in live] == ["2026.demo.sprint"]
        soon = [e.session for e in entries
                if e.session.start and now < e.session.start <= now + timedelta(minutes=10)]
        assert [s.key for s in soon] == ["2026.demo.qualifying"]
        assert any(e.session.end and e.session.end < now - timedelta(days=6) for e in entries)
        assert any(e.session.start is None for e in entries)


def test_re_runs_within_the_hour_keep_every_time_but_the_soon_one() -> None:
    """Two runs in one hour give the same calendar apart from the session starting soon."""
    a = {e.session.key: e.session.start for e in sessions(
        demo_calendar(datetime(2026, 11, 24, 15, 1, tzinfo=UTC)))}
    b = {e.session.key: e.session.start for e in sessions(
        demo_calendar(datetime(2026, 11, 24, 15, 40, tzinfo=UTC)))}
    assert {k for k in a if a[k] != b[k]} == {"2026.demo.qualifying"}


def test_demo_calendar_round_trips_through_the_file_format() -> None:
    """The TOML the demo writes is a valid calendar file."""
    cal = demo_calendar(datetime(2026, 11, 24, 15, 1, tzinfo=UTC))
    assert msgspec.toml.decode(to_toml(cal).encode(), type=CalendarFile) == cal
