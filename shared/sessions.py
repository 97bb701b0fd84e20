"""Session contracts: what an F1 session is and the life-cycle events the scheduler publishes.

Events are a tagged union on ``phase`` so a consumer matches on the type, and each phase can
carry its own fields (a reschedule carries the previous times, a cancellation its reason).
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from shared.subjects import SESSION_KEY_PATTERN, check_session_key
from shared.times import UtcDateTime


class SessionKind(enum.StrEnum):
    """What kind of session it is; it decides the expected duration and which sources serve it."""

    PRACTICE_1 = "practice-1"
    PRACTICE_2 = "practice-2"
    PRACTICE_3 = "practice-3"
    SPRINT_QUALIFYING = "sprint-qualifying"
    SPRINT = "sprint"
    QUALIFYING = "qualifying"
    RACE = "race"
    TESTING = "testing"


class Phase(enum.StrEnum):
    """Phases of a session's life cycle, in the order they normally happen."""

    SCHEDULED = "scheduled"
    UPCOMING = "upcoming"
    LIVE = "live"
    ENDED = "ended"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


SessionKey = Annotated[str, msgspec.Meta(pattern=SESSION_KEY_PATTERN, max_length=140)]


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """One session of a race weekend, with its times in UTC.

    ``start`` is ``None`` while the time is still to be confirmed: it is never guessed.
    """

    key: SessionKey
    season: int
    round: int
    event: str
    circuit: str = ""
    country: str = ""
    kind: SessionKind
    name: str
    start: UtcDateTime | None = None
    end: UtcDateTime | None = None

    def __post_init__(self) -> None:
        check_session_key(self.key)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"session {self.key} ends before it starts")


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="phase"):
    session: Session
    #: When the transition took effect (for ``live``, the session start), UTC.
    at: UtcDateTime


class Scheduled(_Event, frozen=True, kw_only=True, tag=Phase.SCHEDULED.value):
    """The session is on the calendar."""


class Upcoming(_Event, frozen=True, kw_only=True, tag=Phase.UPCOMING.value):
    """The session starts soon: extraction begins."""


class Live(_Event, frozen=True, kw_only=True, tag=Phase.LIVE.value):
    """The session is running."""


class Ended(_Event, frozen=True, kw_only=True, tag=Phase.ENDED.value):
    """The session is over (expected duration plus grace has passed)."""


class Rescheduled(_Event, frozen=True, kw_only=True, tag=Phase.RESCHEDULED.value):
    """The session moved; ``session`` carries the new times."""

    previous_start: UtcDateTime | None = None
    previous_end: UtcDateTime | None = None


class Cancelled(_Event, frozen=True, kw_only=True, tag=Phase.CANCELLED.value):
    """The session will not take place."""

    reason: str = ""


SessionEvent = Scheduled | Upcoming | Live | Ended | Rescheduled | Cancelled


def phase_of(event: SessionEvent) -> Phase:
    """The phase an event announces."""
    return Phase(str(type(event).__struct_config__.tag))


class SessionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A session and its current phase, as the API and the feed show it."""

    session: Session
    phase: Phase
    #: When the current phase took effect.
    since: UtcDateTime
    revision: int = 0


def status_of(event: SessionEvent, revision: int = 0) -> SessionStatus:
    """The status a session's last event implies."""
    return SessionStatus(session=event.session, phase=phase_of(event), since=event.at,
                         revision=revision)
