"""Calendar sources (a calendar file, FastF1) and the persisted last good calendar.

A source either returns a whole season or raises :class:`shared.calendar.CalendarError`; the
scheduler then keeps the last good calendar in force, so a flaky source never empties the plan.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from shared.calendar import CalendarError, CalendarFile, SavedCalendar, read_calendar_file
from shared.codec import PayloadError, decode, encode

FASTF1_TIMEOUT = 120.0


class CalendarSource(Protocol):
    """Where the season comes from."""

    name: str

    async def load(self, season: int) -> CalendarFile:
        """The whole season, or :class:`CalendarError`."""
        ...


class FileSource:
    """A calendar file in the documented TOML format (offline use, the demo)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"file {path}"

    async def load(self, season: int) -> CalendarFile:
        del season  # the file holds one season, whichever it is
        return await asyncio.to_thread(read_calendar_file, self.path)


class FastF1Source:
    """The real calendar from FastF1, its cache in the data folder."""

    def __init__(self, cache_dir: Path, base_url: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.base_url = base_url
        self.name = "FastF1"

    async def load(self, season: int) -> CalendarFile:
        # Imported here: FastF1 pulls in pandas and friends, which a file-only setup never needs.
        from services.scheduler.fastf1_source import CalendarSourceError, fetch_calendar  # noqa: PLC0415

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(fetch_calendar, season, self.cache_dir, base_url=self.base_url),
                FASTF1_TIMEOUT)
        except TimeoutError as exc:
            raise CalendarError(f"FastF1 gave no calendar within {FASTF1_TIMEOUT:.0f} s") from exc
        except CalendarSourceError as exc:
            raise CalendarError(str(exc)) from exc


class LastGood:
    """The last calendar loaded successfully, persisted so a restart without the source works."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, source: str, calendar: CalendarFile) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(encode(SavedCalendar(source=source, loaded_at=datetime.now(UTC), calendar=calendar)))
        tmp.replace(self.path)

    def load(self) -> SavedCalendar | None:
        try:
            return decode(self.path.read_bytes(), SavedCalendar, max_bytes=16 * 1024 * 1024)
        except (OSError, PayloadError):
            return None
