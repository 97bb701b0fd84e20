"""The demo calendar: a season around "now", with a session live, one about to start, past and
future ones, so every phase of the life cycle is visible within minutes of ``slipstream up``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import tomli_w

from shared.calendar import CalendarEvent, CalendarFile, CalendarSession
from shared.sessions import SessionKind


def _at(now: datetime, minutes: float) -> datetime:
    return (now + timedelta(minutes=minutes)).replace(microsecond=0)


def demo_calendar(now: datetime) -> CalendarFile:
    """A demo season relative to ``now`` (timezone-aware)."""
    day = 24 * 60.0
    past = CalendarEvent(
        round=1, name="Slipstream Demo Opening Grand Prix", slug="demo-opening",
        circuit="Loopback Ring", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.QUALIFYING, start=_at(now, -8 * day),
                            end=_at(now, -8 * day + 60)),
            CalendarSession(kind=SessionKind.RACE, start=_at(now, -7 * day),
                            end=_at(now, -7 * day + 120)),
        ],
    )
    current = CalendarEvent(
        round=2, name="Slipstream Demo Grand Prix", slug="demo",
        circuit="Circuit de Loopback", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.PRACTICE_1, start=_at(now, -day - 60),
                            end=_at(now, -day)),
            CalendarSession(kind=SessionKind.SPRINT_QUALIFYING, start=_at(now, -day + 120),
                            end=_at(now, -day + 165)),
            CalendarSession(kind=SessionKind.SPRINT, start=_at(now, -25), end=_at(now, 35)),
            CalendarSession(kind=SessionKind.QUALIFYING, start=_at(now, 5), end=_at(now, 65)),
            CalendarSession(kind=SessionKind.RACE, start=_at(now, day), end=_at(now, day + 120)),
        ],
    )
    future = CalendarEvent(
        round=3, name="Slipstream Demo Night Grand Prix", slug="demo-night",
        circuit="Port 8090 Street Circuit", country="Localhost",
        sessions=[
            CalendarSession(kind=SessionKind.PRACTICE_1, start=_at(now, 14 * day)),
            CalendarSession(kind=SessionKind.QUALIFYING, start=_at(now, 15 * day)),
            # Time to be confirmed: no start yet.
            CalendarSession(kind=SessionKind.RACE),
        ],
    )
    return CalendarFile(season=now.year, events=[past, current, future])


def to_toml(calendar: CalendarFile) -> str:
    """Render a calendar in the documented TOML format."""
    data = msgspec.to_builtins(calendar, builtin_types=(datetime,))
    return tomli_w.dumps(_drop_none(data))


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value



