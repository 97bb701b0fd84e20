"""The FastF1 calendar source against a local server that plays FastF1's schedule backend.

``fixtures/schedule_2026.json`` is a hand-built file in the format FastF1 downloads from
``fastf1.events._SCHEDULE_BASE_URL`` (``schedule_{year}.json``): one JSON object per column, each
mapping the row index (``"0"``, ``"1"``, ...) to the value; session times are local times and
``gmt_offset`` gives the circuit's offset, from which FastF1 computes the ``SessionNDateUtc``
columns. Nothing here reaches the internet: every URL FastF1 could use points at 127.0.0.1.
"""

from __future__ import annotations

import copy
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastf1._api
import fastf1.ergast.interface
import fastf1.ergast.legacy
import fastf1.events
import pytest
from structlog.testing import capture_logs

from services.scheduler import fastf1_source
from services.scheduler.fastf1_source import CalendarSourceError, fetch_calendar
from shared.calendar import CalendarFile, sessions
from shared.sessions import SessionKind

FIXTURES = Path(__file__).parent / "fixtures"
SCHEDULE_2026 = FIXTURES / "schedule_2026.json"

Route = tuple[int, bytes]


class _Server:
    """A loopback HTTP server answering from a table of paths; it records every path asked for."""

    def __init__(self, routes: dict[str, Route], default: Route) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, body = routes.get(self.path, default)
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status < 400 else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


ServerFactory = Callable[..., _Server]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """Start loopback servers: ``serve(routes, default=(404, ...))``; all are stopped afterwards."""
    servers: list[_Server] = []

    def start(routes: dict[str, Route] | None = None,
              default: Route = (404, b"<html>Not Found</html>")) -> _Server:
        server = _Server(routes or {}, default)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _real_urls() -> tuple[str, ...]:
    return (fastf1.events._SCHEDULE_BASE_URL, fastf1.ergast.legacy.base_url,
            fastf1.ergast.interface.BASE_URL, fastf1._api.base_url, fastf1._api.base_url_mirror)


def _fixture_json() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(SCHEDULE_2026.read_text(encoding="utf-8"))
    return data


def _fetch(server: _Server, tmp_path: Path, season: int = 2026) -> CalendarFile:
    return fetch_calendar(season, tmp_path / "cache", base_url=server.url)


def test_maps_the_fastf1_season_to_calendar_structs(serve: ServerFactory, tmp_path: Path) -> None:
    """Events, kinds, names, slugs and UTC starts come out exactly as the schedule file says."""
    real = _real_urls()
    server = serve({"/schedule_2026.json": (200, SCHEDULE_2026.read_bytes())})

    calendar = _fetch(server, tmp_path)

    assert server.requests == ["/schedule_2026.json"]
    assert _real_urls() == real
    assert calendar.season == 2026
    assert [e.round for e in calendar.events] == [0, 1, 2, 3, 20]
    assert [e.slug for e in calendar.events] == [
        "pre-season-testing", "australian-grand-prix", "chinese-grand-prix", "japanese-grand-prix",
        "sao-paulo-grand-prix"]
    testing, australia, china, japan, brazil = calendar.events

    assert testing.name == "Pre-Season Testing"
    assert (testing.circuit, testing.country) == ("Sakhir", "Bahrain")
    assert [s.kind for s in testing.sessions] == [SessionKind.TESTING] * 3
    assert [s.name for s in testing.sessions] == ["Day 1", "Day 2", "Day 3"]
    assert testing.sessions[0].start == datetime(2026, 2, 11, 7, 0, tzinfo=UTC)

    assert [s.kind for s in australia.sessions] == [
        SessionKind.PRACTICE_1, SessionKind.PRACTICE_2, SessionKind.PRACTICE_3,
        SessionKind.QUALIFYING, SessionKind.RACE]
    assert [s.kind for s in china.sessions] == [
        SessionKind.PRACTICE_1, SessionKind.SPRINT_QUALIFYING, SessionKind.SPRINT,
        SessionKind.QUALIFYING, SessionKind.RACE]
    assert [s.name for s in china.sessions] == [
        "Practice 1", "Sprint Qualifying", "Sprint", "Qualifying", "Race"]

    # Melbourne is UTC+11: the file's local 15:00 is 04:00 UTC, and UTC is what must come out.
    race = australia.sessions[-1]
    local = datetime.fromisoformat(str(_fixture_json()["session5_date"]["1"]))
    assert local == datetime(2026, 3, 8, 15, 0)
    assert race.start == datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
    assert race.start != local.replace(tzinfo=UTC)
    assert race.start is not None
    assert race.start.tzinfo is UTC
    assert china.sessions[2].start == datetime(2026, 3, 14, 3, 0, tzinfo=UTC)
    assert brazil.sessions[-1].start == datetime(2026, 11, 8, 17, 0, tzinfo=UTC)  # UTC-3
    assert (brazil.name, brazil.circuit, brazil.country) == ("São Paulo Grand Prix", "São Paulo", "Brazil")

    assert japan.sessions[-1].kind is SessionKind.RACE
    assert japan.sessions[-1].start is None
    assert all(s.start is not None for s in japan.sessions[:-1])
    assert all(s.end is None for e in calendar.events for s in e.sessions)

    keys = {entry.session.key for entry in sessions(calendar)}
    assert {"2026.pre-season-testing.testing-1", "2026.japanese-grand-prix.race",
            "2026.chinese-grand-prix.sprint-qualifying"} <= keys


def test_skips_unknown_sessions_with_a_warning_and_numbers_clashing_slugs(
        serve: ServerFactory, tmp_path: Path) -> None:
    """An unknown session name is dropped with a warning, and a repeated event name gets slug ``-2``."""
    data = _fixture_json()
    data["session3"]["1"] = "Warm Up"
    for column in data.values():  # a second pre-season test, one week after the first
        column["5"] = copy.deepcopy(column["0"])
    for name in ("event_date", "session1_date", "session2_date", "session3_date"):
        first = datetime.fromisoformat(str(data[name]["0"]))
        data[name]["5"] = (first + timedelta(days=7)).isoformat()
    server = serve({"/schedule_2026.json": (200, json.dumps(data).encode())})

    with capture_logs() as logged:
        calendar = _fetch(server, tmp_path)

    australia = calendar.events[1]
    assert [s.name for s in australia.sessions] == ["Practice 1", "Practice 2", "Qualifying", "Race"]
    assert [e.slug for e in calendar.events if e.name == "Pre-Season Testing"] == [
        "pre-season-testing", "pre-season-testing-2"]
    assert calendar.events[-1].sessions[0].start == datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
    warnings = [e for e in logged if e["log_level"] == "warning"]
    assert [(w["event"], w["event_name"], w["session"]) for w in warnings] == [
        ("unknown FastF1 session skipped", "Australian Grand Prix", "Warm Up")]


@pytest.mark.parametrize("status", [404, 500])
def test_an_http_error_raises_quickly_without_retries(
        serve: ServerFactory, tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture) -> None:
    """A server answering an HTTP error makes one request and raises CalendarSourceError naming it."""
    real = _real_urls()
    fastf1_handlers = logging.getLogger("fastf1").handlers[:]
    server = serve(default=(status, b"<html>error</html>"))

    started = time.monotonic()
    expected = rf"2026 schedule: http://127\.0\.0\.1:\d+/schedule_2026\.json answered HTTP {status}"
    with pytest.raises(CalendarSourceError, match=expected):
        _fetch(server, tmp_path)

    assert time.monotonic() - started < 5
    assert server.requests == ["/schedule_2026.json"]
    assert _real_urls() == real
    assert logging.getLogger("fastf1").handlers == fastf1_handlers
    assert not [r for r in caplog.records if r.name.startswith("fastf1")]


def test_a_body_that_is_not_a_schedule_raises(serve: ServerFactory, tmp_path: Path) -> None:
    """A 200 answer that is not FastF1's schedule format raises CalendarSourceError with the cause."""
    server = serve({"/schedule_2026.json": (200, b'{"hello": {"0": "world"}}')})

    with pytest.raises(CalendarSourceError, match="KeyError: 'gmt_offset'"):
        _fetch(server, tmp_path)


def test_a_refused_connection_raises(tmp_path: Path) -> None:
    """Nothing listening at base_url raises CalendarSourceError instead of reaching anywhere else."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()

    with pytest.raises(CalendarSourceError, match="ConnectionError"):
        fetch_calendar(2026, tmp_path / "cache", base_url=f"http://127.0.0.1:{port}/")

    assert time.monotonic() - started < 5


def test_a_silent_server_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts the connection and never answers fails after REQUEST_TIMEOUT."""
    monkeypatch.setattr(fastf1_source, "REQUEST_TIMEOUT", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # never accepted: the kernel completes the handshake, nobody answers
        port = listener.getsockname()[1]
        started = time.monotonic()

        with pytest.raises(CalendarSourceError, match="Timeout"):
            fetch_calendar(2026, tmp_path / "cache", base_url=f"http://127.0.0.1:{port}")

        assert time.monotonic() - started < 5


def test_writes_nothing_outside_the_cache_dir(
        serve: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FastF1's cache lands in cache_dir; the home directory and the working directory stay empty."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("FASTF1_CACHE", raising=False)
    monkeypatch.chdir(cwd)
    server = serve({"/schedule_2026.json": (200, SCHEDULE_2026.read_bytes())})

    calendar = fetch_calendar(2026, tmp_path / "cache", base_url=server.url)

    assert len(calendar.events) == 5
    assert list(home.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["fastf1_http_cache.sqlite"]
