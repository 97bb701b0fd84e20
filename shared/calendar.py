"""The calendar file format: one season of events and their sessions, for offline use and the demo.

TOML, documented in the README::

    season = 2026

    [[events]]
    round = 8
    name = "Monaco Grand Prix"
    slug = "monaco"              # optional; derived from the name
    circuit = "Circuit de Monaco"
    country = "Monaco"

    [[events.sessions]]
    kind = "race"                # practice-1 ... race, testing
    start = 2026-06-07T13:00:00Z # omit while the time is to be confirmed
    end = 2026-06-07T15:00:00Z   # optional; the scheduler uses the kind's expected duration

Times must carry a zone (``Z`` or an offset): a local time without one is refused, never guessed.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.sessions import SessionKind
from shared.times import UtcDateTime

Token = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class CalendarSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                      omit_defaults=True):
    """One session in the calendar file."""

    kind: SessionKind
    name: str = ""
    start: UtcDateTime | None = None
    end: UtcDateTime | None = None
    cancelled: bool = False


class CalendarEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                      omit_defaults=True):
    """One event (a race weekend or a test) in the calendar file."""

    round: Annotated[int, msgspec.Meta(ge=0, le=99)]
    name: str
    slug: Token | None = None
    circuit: str = ""
    country: str = ""
    sessions: list[CalendarSession] = msgspec.field(default_factory=list)


class CalendarFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                      omit_defaults=True):
    """A season in the calendar file format."""

    season: Annotated[int, msgspec.Meta(ge=1950, le=2999)]
    events: list[CalendarEvent] = msgspec.field(default_factory=list)
