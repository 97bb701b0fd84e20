"""Test calendars: a sprint weekend and a normal weekend, written in the calendar file format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, minute, tzinfo=UTC)


def two_weekends(*, race_start: datetime | None = None, fp3_cancelled: bool = False,
                 without_fp2: bool = False) -> dict[str, Any]:
    """Miami (sprint weekend, 1-3 May 2026) and Imola (normal weekend, 15-17 May 2026)."""
    imola = [
        {"kind": "practice-1", "start": at(15, 11, 30)},
        {"kind": "practice-2", "start": at(15, 15)},
        {"kind": "practice-3", "start": at(16, 10, 30), "cancelled": fp3_cancelled},
        {"kind": "qualifying", "start": at(16, 14)},
        {"kind": "race", "start": race_start or at(17, 13)},
    ]
    if without_fp2:
        imola.pop(1)
    return {
        "season": 2026,
        "events": [
            {"round": 6, "name": "Miami Grand Prix", "slug": "miami", "circuit": "Miami",
             "country": "United States", "sessions": [
                 {"kind": "practice-1", "start": at(1, 16, 30)},
                 {"kind": "sprint-qualifying", "start": at(1, 20, 30)},
                 {"kind": "sprint", "start": at(2, 16)},
                 {"kind": "qualifying", "start": at(2, 20)},
                 {"kind": "race", "start": at(3, 20)},
             ]},
            {"round": 7, "name": "Emilia Romagna Grand Prix", "slug": "imola", "circuit": "Imola",
             "country": "Italy", "sessions": imola},
        ],
    }


def write(path: Path, calendar: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(calendar))
    return path
