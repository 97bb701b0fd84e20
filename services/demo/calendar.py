"""The demo calendar: a season around "now", with a session live, one about to start, past and
future ones, so every phase of the life cycle is visible within minutes of ``slipstream up``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import msgspec
import tomli_w

from shared.calendar import CalendarEvent, CalendarFile, CalendarSession
from shared.sessions import SessionKind


def demo_calendar(now: datetime) -> CalendarFile:
    """A demo season around ``now`` (timezone-aware).

    Times sit on a grid (the day, the hour) so that runs of ``slipstream up`` within the same
    hour produce the same calendar and the scheduler sees nothing moved; only the session
    "starting in a few minutes" follows ``now`` itself.
    """
    day = now.replace(hour=12, minute=0, second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    soon = now.replace(second=0, microsecond=0) + timedelta(minutes=6)

    def d(days: float) -> datetime:
        return day + timedelta(days=days)

    def h(minutes: float) -> datetime:
        return hour + timedelta(minutes=minutes)

    past = CalendarEvent(
        round=1, name="Slipstream Demo Opening Grand Prix", slug="demo-opening",
        circuit="Loopback Ring", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.QUALIFYING, start=d(-8), end=d(-8) + timedelta(hours=1)),
            CalendarSession(kind=SessionKind.RACE, start=d(-7), end=d(-7) + timedelta(hours=2)),
        ],
    )
    current = CalendarEvent(
        round=2, name="Slipstream Demo Grand Prix", slug="demo",
        circuit="Circuit de Loopback", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.PRACTICE_1, start=d(-2), end=d(-2) + timedelta(hours=1)),
            CalendarSession(kind=SessionKind.SPRINT_QUALIFYING, start=d(-1),
                            end=d(-1) + timedelta(minutes=45)),
            # Live for the whole of the current hour, whenever in it `slipstream up` starts.
            CalendarSession(kind=SessionKind.SPRINT, start=h(-30), end=h(90)),
            CalendarSession(kind=SessionKind.QUALIFYING, start=soon, end=soon + timedelta(hours=1)),
            CalendarSession(kind=SessionKind.RACE, start=d(1), end=d(1) + timedelta(hours=2)),
        ],
    )
    future = CalendarEvent(
        round=3, name="Slipstream Demo Night Grand Prix", slug="demo-night",
        circuit="Port 8090 Street Circuit", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.PRACTICE_1, start=d(14)),
            CalendarSession(kind=SessionKind.QUALIFYING, start=d(15)),
            # Time to be confirmed: no start yet.
            CalendarSession(kind=SessionKind.RACE),
        ],
    )
    return CalendarFile(season=now.year, events=[past, current, future])


def to_toml(calendar: CalendarFile) -> str:
    """Render a calendar in the documented TOML format."""
    data = msgspec.to_builtins(calendar, builtin_types=(datetime,))
    return tomli_w.dumps(cast("dict[str, Any]", _drop_none(data)))


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value



