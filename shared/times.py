"""Time types and the injectable clock: inside the system every time is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Protocol

import msgspec

#: A timezone-aware datetime; naive datetimes are refused at every boundary.
UtcDateTime = Annotated[datetime, msgspec.Meta(tz=True)]


class Clock(Protocol):
    """Something that tells the time; tests inject a fake one."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)
