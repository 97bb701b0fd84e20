"""The FastF1 calendar source: one season's schedule from FastF1's own backend, as a calendar file.

This module owns everything FastF1-specific in the scheduler:

* configuring FastF1's HTTP cache in the folder it is given (never the home directory);
* pointing FastF1's schedule URL, and its fallbacks, at another server when asked (tests, mirrors),
  and putting the real URLs back afterwards;
* a timeout on FastF1's HTTP requests (FastF1 sets none, and a hung request would hold the
  worker thread for good);
* keeping FastF1's own log lines out of the service log: a failure comes back as one
  :class:`CalendarSourceError` with a readable reason instead;
* mapping FastF1's ``EventSchedule`` DataFrame to :class:`shared.calendar.CalendarFile`, with
  UTC start times (``SessionNDateUtc``) and ``None`` for a time still to be confirmed.

Importing it pulls in FastF1, pandas and friends, so :mod:`services.scheduler.sources` imports it
only when the FastF1 source is used. :func:`fetch_calendar` is synchronous (run it in a worker
thread) and calls are serialised: FastF1's configuration is process-wide.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import fastf1
import fastf1._api
import fastf1.ergast.interface
import fastf1.ergast.legacy
import fastf1.events
import msgspec
import requests
from requests.adapters import HTTPAdapter

from shared import logs
from shared.calendar import CalendarEvent, CalendarFile, CalendarSession
from shared.sessions import SessionKind
from shared.subjects import slug

#: Seconds FastF1 may wait to connect, and then between bytes, on one HTTP request.
REQUEST_TIMEOUT: float = 30.0
#: Seconds a call waits for another call that is still running before giving up.
LOCK_TIMEOUT: float = 150.0

_SESSION_COLUMNS: Final = 5
_KINDS: Final = {
    "practice 1": SessionKind.PRACTICE_1,
    "practice 2": SessionKind.PRACTICE_2,
    "practice 3": SessionKind.PRACTICE_3,
    "sprint qualifying": SessionKind.SPRINT_QUALIFYING,
    "sprint shootout": SessionKind.SPRINT_QUALIFYING,
    "sprint": SessionKind.SPRINT,
    "qualifying": SessionKind.QUALIFYING,
    "race": SessionKind.RACE,
}
_TESTING_DAY: Final = re.compile(r"^day\s*\d+$")
#: What an empty session slot looks like once FastF1 has turned the column into strings.
_NO_SESSION: Final = frozenset({"", "none", "nan", "nat"})

_lock = threading.Lock()


class CalendarSourceError(RuntimeError):
    """FastF1 gave no usable calendar; the message says why."""


class _TimeoutAdapter(HTTPAdapter):
    """Gives FastF1's requests a timeout, and remembers the status of each answer it got."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, int]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = REQUEST_TIMEOUT
        response = super().send(request, *args, **kwargs)
        self.answers.append((str(request.url), response.status_code))
        return response


_adapter = _TimeoutAdapter()


class _Collector(logging.Handler):
    """Keeps FastF1's log records of one call, to explain a failure."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def cause(self) -> str | None:
        """The last exception FastF1 logged and swallowed, as ``Type: message``."""
        for record in reversed(self.records):
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                return f"{type(exc).__name__}: {exc}"
        return None


def fetch_calendar(season: int, cache_dir: Path, *, base_url: str | None = None) -> CalendarFile:
    """The whole season from FastF1's schedule backend, testing included.

    ``cache_dir`` holds FastF1's HTTP cache (created if missing). ``base_url`` replaces
    FastF1's schedule URL and its fallbacks (``{base_url}/schedule_{season}.json``) for this call.
    Raises :class:`CalendarSourceError` on any failure.
    """
    if not _lock.acquire(timeout=LOCK_TIMEOUT):
        raise CalendarSourceError(
            f"FastF1 schedule {season}: another fetch has been running for over {LOCK_TIMEOUT:.0f} s")
    try:
        schedule = _load_schedule(season, cache_dir, base_url)
    finally:
        _lock.release()
    try:
        return to_calendar(season, schedule)
    except (KeyError, TypeError, ValueError, AttributeError, msgspec.ValidationError) as exc:
        raise CalendarSourceError(f"FastF1 schedule {season}: unusable data ({exc})") from exc


def _load_schedule(season: int, cache_dir: Path, base_url: str | None) -> Any:
    _adapter.answers.clear()
    with _quiet_fastf1() as collector, _urls_pointed_at(base_url):
        try:
            _configure_cache(cache_dir)
            return fastf1.get_event_schedule(season, include_testing=True, backend="fastf1")
        # FastF1 raises whatever its layers raise (ValueError when its backend swallowed the real
        # error, requests and sqlite errors, OSError, its rate-limit error): every one of them means
        # "no calendar from FastF1", and the caller keeps the last good one.
        except Exception as exc:
            raise CalendarSourceError(_explain(season, exc, collector)) from exc


def _explain(season: int, exc: Exception, collector: _Collector) -> str:
    where = f"FastF1 could not load the {season} schedule"
    failed = [(url, status) for url, status in _adapter.answers if status >= 400]
    if failed:
        url, status = failed[-1]
        return f"{where}: {logs.redact_text(url)} answered HTTP {status}"
    cause = collector.cause()
    if cause:
        return f"{where}: {logs.redact_text(cause)}"
    return f"{where}: {type(exc).__name__}: {logs.redact_text(str(exc))}"


def _configure_cache(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    current, _ = fastf1.Cache.get_cache_info()
    if current is None or Path(current).resolve() != cache_dir.resolve():
        fastf1.Cache.configure(cache_dir=str(cache_dir))
    # FastF1 has no public hook for a timeout; mount one on its cached session if it is there.
    session = getattr(fastf1.Cache, "_requests_session_cached", None)
    if isinstance(session, requests.Session):
        session.mount("http://", _adapter)
        session.mount("https://", _adapter)


@contextmanager
def _quiet_fastf1() -> Iterator[_Collector]:
    """FastF1's log records go to a collector for the duration, not to its console or the root."""
    logger = logging.getLogger("fastf1")
    collector = _Collector()
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers = [collector]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


@contextmanager
def _urls_pointed_at(base_url: str | None) -> Iterator[None]:
    """Every URL the schedule backends use points at ``base_url``; the real ones come back after."""
    if base_url is None:
        yield
        return
    base = base_url.rstrip("/")
    saved = (fastf1.events._SCHEDULE_BASE_URL, fastf1.ergast.legacy.base_url,
             fastf1.ergast.interface.BASE_URL, fastf1._api.base_url, fastf1._api.base_url_mirror)
    fastf1.events._SCHEDULE_BASE_URL = base + "/"
    fastf1.ergast.legacy.base_url = base
    fastf1.ergast.interface.BASE_URL = base
    fastf1._api.base_url = base
    fastf1._api.base_url_mirror = base
    try:
        yield
    finally:
        (fastf1.events._SCHEDULE_BASE_URL, fastf1.ergast.legacy.base_url,
         fastf1.ergast.interface.BASE_URL, fastf1._api.base_url, fastf1._api.base_url_mirror) = saved


def to_calendar(season: int, schedule: Any) -> CalendarFile:
    """Map FastF1's ``EventSchedule`` to a validated :class:`CalendarFile`.

    Unknown session names are skipped with a warning; an event name that repeats (two
    pre-season tests) gets a numbered slug (``pre-season-testing-2``).
    """
    # Plain Python values: Timestamps stay (a datetime subclass), NaT and NaN become None.
    rows: list[dict[str, Any]] = (
        schedule.astype(object).where(schedule.notna(), None).to_dict(orient="records"))
    used: set[str] = set()
    events = []
    for row in rows:
        name = str(row["EventName"]).strip()
        testing = str(row["EventFormat"]).strip().lower() == "testing"
        sessions = []
        for n in range(1, _SESSION_COLUMNS + 1):
            item = _session(season, name, testing, row[f"Session{n}"], row[f"Session{n}DateUtc"])
            if item is not None:
                sessions.append(item)
        events.append(CalendarEvent(
            round=int(row["RoundNumber"]), name=name, slug=_unique(slug(name), used),
            circuit=_text(row["Location"]), country=_text(row["Country"]), sessions=sessions))
    calendar = CalendarFile(season=season, events=events)
    # Structs are not validated when built; a round trip checks rounds, slugs and time zones.
    return msgspec.convert(msgspec.to_builtins(calendar, builtin_types=(datetime,)), CalendarFile)


def _session(season: int, event: str, testing: bool, name: Any, start: Any) -> CalendarSession | None:
    label = "" if name is None else str(name).strip()
    if label.lower() in _NO_SESSION:
        return None
    key = label.lower()
    if testing or _TESTING_DAY.match(key):
        kind = SessionKind.TESTING
    elif key in _KINDS:
        kind = _KINDS[key]
    else:
        logs.get(__name__).warning("unknown FastF1 session skipped", season=season,
                                   event_name=event, session=label)
        return None
    return CalendarSession(kind=kind, name=label, start=_utc(start))


def _utc(value: Any) -> datetime | None:
    """FastF1's naive UTC timestamp as an aware UTC datetime; ``None`` (was NaT) stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"session time {value!r} is not a timestamp")
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _unique(base: str, used: set[str]) -> str:
    candidate, n = base, 1
    while candidate in used:
        n += 1
        suffix = f"-{n}"
        candidate = base[:64 - len(suffix)].rstrip("-") + suffix
    used.add(candidate)
    return candidate
