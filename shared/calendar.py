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

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Final

import msgspec

from shared.sessions import Session, SessionKind
from shared.subjects import TOKEN_PATTERN, session_key, slug
from shared.times import UtcDateTime

Token = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN)]


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


#: Expected duration of each kind of session, used when the calendar gives no end time.
DEFAULT_DURATIONS: Final[Mapping[SessionKind, timedelta]] = MappingProxyType({
    SessionKind.PRACTICE_1: timedelta(minutes=60),
    SessionKind.PRACTICE_2: timedelta(minutes=60),
    SessionKind.PRACTICE_3: timedelta(minutes=60),
    SessionKind.SPRINT_QUALIFYING: timedelta(minutes=45),
    SessionKind.SPRINT: timedelta(minutes=60),
    SessionKind.QUALIFYING: timedelta(minutes=60),
    SessionKind.RACE: timedelta(minutes=120),
    SessionKind.TESTING: timedelta(hours=9),
})


class CalendarError(ValueError):
    """A calendar file or source could not be read or makes no sense."""


class CalendarEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One session as the calendar says it is now: the session and whether it is cancelled."""

    session: Session
    cancelled: bool = False


def read_calendar_file(path: Path) -> CalendarFile:
    """Read a calendar file (TOML); raise :class:`CalendarError` naming what is wrong."""
    try:
        return msgspec.toml.decode(path.read_bytes(), type=CalendarFile)
    except OSError as exc:
        raise CalendarError(f"calendar file {path}: cannot be read ({exc.strerror})") from exc
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise CalendarError(f"calendar file {path}: {exc}") from exc


def sessions(calendar: CalendarFile,
             durations: Mapping[SessionKind, timedelta] = DEFAULT_DURATIONS) -> list[CalendarEntry]:
    """Every session of the calendar with its key and expected end, ordered by start.

    A kind that occurs more than once in an event (testing days) gets a numbered key token
    (``testing-1``, ``testing-2``); a session with no start stays without one (to be confirmed).
    """
    entries: list[CalendarEntry] = []
    slugs: set[str] = set()
    for event in calendar.events:
        event_slug = event.slug or slug(event.name)
        if event_slug in slugs:
            raise CalendarError(f"season {calendar.season}: two events share the slug {event_slug!r}")
        slugs.add(event_slug)
        counts = Counter(s.kind for s in event.sessions)
        seen: Counter[SessionKind] = Counter()
        for item in event.sessions:
            seen[item.kind] += 1
            token = item.kind.value if counts[item.kind] == 1 else f"{item.kind.value}-{seen[item.kind]}"
            end = item.end
            if end is None and item.start is not None:
                end = item.start + durations.get(item.kind, DEFAULT_DURATIONS[item.kind])
            try:
                session = Session(
                    key=session_key(calendar.season, event_slug, token), season=calendar.season,
                    round=event.round, event=event.name, circuit=event.circuit,
                    country=event.country, kind=item.kind,
                    name=item.name or _DEFAULT_NAMES[item.kind], start=item.start, end=end)
            except ValueError as exc:
                raise CalendarError(f"{event.name} {item.kind.value}: {exc}") from exc
            entries.append(CalendarEntry(session=session, cancelled=item.cancelled))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(entries, key=lambda e: (e.session.start or far, e.session.key))


_DEFAULT_NAMES: Final = {
    SessionKind.PRACTICE_1: "Practice 1", SessionKind.PRACTICE_2: "Practice 2",
    SessionKind.PRACTICE_3: "Practice 3", SessionKind.SPRINT_QUALIFYING: "Sprint Qualifying",
    SessionKind.SPRINT: "Sprint", SessionKind.QUALIFYING: "Qualifying", SessionKind.RACE: "Race",
    SessionKind.TESTING: "Testing",
}


def demo_calendar_path(data_dir: Path) -> Path:
    """Where the demo origin writes its calendar (the scheduler's calendar under the demo)."""
    return data_dir / "demo" / "calendar.toml"


def last_good_path(data_dir: Path) -> Path:
    """Where the scheduler keeps the last calendar it loaded successfully."""
    return data_dir / "scheduler" / "calendar.json"


class SavedCalendar(msgspec.Struct, frozen=True, kw_only=True):
    """The last good calendar on disk, with where and when it came from."""

    source: str
    loaded_at: UtcDateTime
    calendar: CalendarFile


def read_last_good(data_dir: Path) -> SavedCalendar | None:
    """The last good calendar of this data folder, or ``None`` if there is none (or unreadable)."""
    try:
        return msgspec.json.decode(last_good_path(data_dir).read_bytes(), type=SavedCalendar)
    except (OSError, msgspec.DecodeError):
        return None
