"""``slipstream calendar``: the season as a table, offline.

The calendar comes from the data folder: the last good calendar the scheduler saved, else the
demo calendar of ``slipstream up``, else the configured calendar file. Times are shown in the
viewer's local zone and in UTC; what is live and what is next stand out.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from shared.calendar import (
    CalendarEntry,
    CalendarError,
    CalendarFile,
    demo_calendar_path,
    read_calendar_file,
    read_last_good,
    sessions,
)
from shared.settings import Settings

BOLD, GREEN, YELLOW, DIM, RESET = "\033[1m", "\033[32m", "\033[33m", "\033[2m", "\033[0m"


def find_calendar(settings: Settings) -> tuple[CalendarFile, str]:
    """The calendar to show and where it came from; :class:`CalendarError` if there is none."""
    saved = read_last_good(settings.data_path)
    if saved is not None:
        return saved.calendar, f"{saved.source}, loaded {saved.loaded_at:%Y-%m-%d %H:%M} UTC"
    candidates = [demo_calendar_path(settings.data_path)]
    if settings.scheduler.calendar:
        candidates.insert(0, Path(settings.scheduler.calendar).expanduser())
    for path in candidates:
        if path.exists():
            return read_calendar_file(path), f"file {path}"
    raise CalendarError(f"no calendar in {settings.data_path} yet: start `slipstream up` (or the "
                        "scheduler) once, or set scheduler.calendar to a calendar file")


def _status(entry: CalendarEntry, now: datetime, next_key: str | None) -> str:
    s = entry.session
    if entry.cancelled:
        return "cancelled"
    if s.start is None:
        return "time TBC"
    if s.start <= now < (s.end or s.start):
        return "LIVE"
    if s.key == next_key:
        return "NEXT"
    return "done" if (s.end or s.start) <= now else ""


def render(calendar: CalendarFile, now: datetime, *, color: bool = False) -> str:
    """The season as a table: round, event, session, local time, UTC, status."""
    entries = sessions(calendar)
    future = [e for e in entries if e.session.start and e.session.start > now and not e.cancelled]
    next_key = min(future, key=lambda e: e.session.start or now).session.key if future else None
    rows = [("Rnd", "Event", "Session", "Local time", "UTC", "")]
    styles = [BOLD]
    for entry in entries:
        s = entry.session
        local = s.start.astimezone().strftime("%a %d %b %H:%M %Z") if s.start else "TBC"
        utc = s.start.strftime("%a %d %b %H:%M") if s.start else "TBC"
        status = _status(entry, now, next_key)
        rows.append((str(s.round), s.event, s.name, local, utc, status))
        styles.append({"LIVE": BOLD + GREEN, "NEXT": BOLD + YELLOW, "done": DIM,
                       "cancelled": DIM}.get(status, ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"Season {calendar.season}"]
    for row, style in zip(rows, styles, strict=True):
        text = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        lines.append(f"{style}{text}{RESET}" if color and style else text)
    return "\n".join(lines)
