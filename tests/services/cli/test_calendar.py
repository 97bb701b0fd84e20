"""`slipstream calendar`: the season as a table, offline."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from services.cli.calendar_table import render
from shared.calendar import CalendarFile, SavedCalendar, last_good_path
from tests.procs import base_env, module
from tests.services.scheduler.calendars import at, two_weekends


def calendar(**kw: object) -> CalendarFile:
    return msgspec.convert(two_weekends(**kw), CalendarFile)  # type: ignore[arg-type]


def test_table_shows_local_and_utc_times_and_marks_live_and_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Live and next sessions are marked; times show in the viewer's zone and in UTC."""
    monkeypatch.setenv("TZ", "Europe/Rome")
    time.tzset()
    try:
        text = render(calendar(fp3_cancelled=True), at(2, 16, 30))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    lines = text.splitlines()
    assert lines[0] == "Season 2026"
    sprint = next(line for line in lines if "Sprint " in line and "Qualifying" not in line)
    assert "Sat 02 May 18:00 CEST" in sprint
    assert "Sat 02 May 16:00" in sprint
    assert sprint.endswith("LIVE")
    assert next(line for line in lines if "Miami" in line and "Qualifying " in line
                and "Sprint" not in line).endswith("NEXT")
    assert next(line for line in lines if "Practice 3" in line).endswith("cancelled")
    assert sum(line.endswith("done") for line in lines) == 2
    assert "\033[" not in text


def test_command_reads_the_last_good_calendar_offline(tmp_path: Path) -> None:
    """With the scheduler's last good calendar in the data folder, no network is needed."""
    path = last_good_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(msgspec.json.encode(SavedCalendar(source="FastF1", loaded_at=datetime.now(UTC),
                                                       calendar=calendar())))
    env = base_env(tmp_path)
    ok = subprocess.run([*module("services.cli"), "calendar"], env=env, capture_output=True,
                        text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Emilia Romagna Grand Prix" in ok.stdout
    assert "(from FastF1, loaded" in ok.stdout
    other = subprocess.run([*module("services.cli"), "calendar", "--season", "1999"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert other.returncode == 1
    assert "no calendar for 1999" in other.stderr


def test_command_without_any_calendar_says_what_to_do(tmp_path: Path) -> None:
    """An empty data folder gives a clear message, not a traceback."""
    done = subprocess.run([*module("services.cli"), "calendar"], env=base_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "start `slipstream up`" in done.stderr
    assert "Traceback" not in done.stderr
