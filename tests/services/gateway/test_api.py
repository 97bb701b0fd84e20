"""The gateway's REST API and exports on a real nats-server: public views only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from services.gateway.app import create_app
from shared import subjects, topology
from shared.codec import encode
from shared.relay_urls import Signer, load_secret
from shared.sessions import Cancelled, Live, Scheduled, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord, Variant
from tests.conftest import until_ready

NOW = datetime.now(UTC).replace(microsecond=0)
SECRET_URL = "https://cdn.secret.test/live/master.m3u8?token=TOPSECRET"


def session(kind: SessionKind, start: datetime | None, event: str = "monaco") -> Session:
    return Session(key=f"2026.{event}.{kind.value}", season=2026, round=8,
                   event="Monaco Grand Prix, Monte Carlo", circuit="Circuit de Monaco",
                   country="Monaco", kind=kind, name=kind.value.title(), start=start,
                   end=start + timedelta(hours=2) if start else None)


@pytest.fixture
async def gateway(nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> str:
    js = nc.jetstream()
    sessions = await topology.sessions_kv(js)
    race = session(SessionKind.RACE, NOW - timedelta(minutes=10))
    quali = session(SessionKind.QUALIFYING, NOW + timedelta(days=1))
    fp1 = session(SessionKind.PRACTICE_1, NOW - timedelta(days=1))
    tbc = session(SessionKind.SPRINT, None)
    await sessions.put(race.key, encode(Live(session=race, at=NOW)))
    await sessions.put(quali.key, encode(Scheduled(session=quali, at=NOW)))
    await sessions.put(fp1.key, encode(Cancelled(session=fp1, at=NOW, reason="rain")))
    await sessions.put(tbc.key, encode(Scheduled(session=tbc, at=NOW)))
    streams = await topology.streams_kv(js)
    for sid, health in (("a", Health.OK), ("b", Health.DEAD)):
        record = StreamRecord(id=sid, session=race.key, source_id=sid, source_name=f"Source {sid}",
                              title="Race feed", upstream_url=SECRET_URL,
                              headers={"Referer": "https://pages.secret.test/"},
                              cookies={"sid": "COOKIESECRET"},
                              variants=(Variant(uri=SECRET_URL, bandwidth=5_000_000, height=1080),),
                              resolved_at=NOW, health=health)
        await streams.put(subjects.stream_key(race.key, sid), encode(record))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    base = serve(create_app(settings, [nats_url]))
    await until_ready(base)
    return base


async def test_sessions_calendar_and_one_session(gateway: str) -> None:
    """Sessions by start time with phases; one session carries its streams."""
    async with httpx.AsyncClient(base_url=gateway) as http:
        listed = (await http.get("/api/sessions")).json()
        one = await http.get("/api/sessions/2026.monaco.race")
        missing = await http.get("/api/sessions/2026.nowhere.race")
        bad = await http.get("/api/sessions/not-a-key")
    assert [s["session"]["key"] for s in listed] == [
        "2026.monaco.practice-1", "2026.monaco.race", "2026.monaco.qualifying",
        "2026.monaco.sprint"]
    assert [s["phase"] for s in listed] == ["cancelled", "live", "scheduled", "scheduled"]
    assert listed[3]["session"]["start"] is None
    assert one.status_code == 200
    assert [s["id"] for s in one.json()["streams"]] == ["a", "b"]
    assert missing.status_code == 404
    assert bad.status_code == 404


async def test_streams_are_public_views_with_signed_relay_urls(gateway: str, tmp_path: Path) -> None:
    """Each view has id, session, source, title, health and a relay playback URL; no secrets."""
    async with httpx.AsyncClient(base_url=gateway) as http:
        resp = await http.get("/api/streams", params={"session": "2026.monaco.race"})
        everything = await http.get("/api/streams")
        live = await http.get("/api/live")
        bad = await http.get("/api/streams", params={"session": "bad..key"})
    # A filter that is no session key says so, rather than answering an empty list
    assert bad.status_code == 400
    assert "is not a session key like '2026.monaco.race'" in bad.text
    views = resp.json()
    assert {k for k in views[0]} >= {"id", "session", "source", "title", "health", "playback_url"}
    assert views[0]["source"] == "Source a"
    url = views[0]["playback_url"]
    assert url.startswith("http://127.0.0.1:8081/s/2026.monaco.race/a/")
    token = url.split("/")[-2]
    Signer(load_secret(None, tmp_path)).verify("2026.monaco.race", "a", token)
    for text in (resp.text, everything.text, live.text):
        for secret in ("secret.test", "TOPSECRET", "COOKIESECRET", "Referer"):
            assert secret not in text
    assert [s["session"]["key"] for s in live.json()] == ["2026.monaco.race"]


async def test_exports_for_players_and_calendars(gateway: str) -> None:
    """M3U lists the playable live streams by relay URL; ICS lists timed sessions."""
    async with httpx.AsyncClient(base_url=gateway) as http:
        playlist = await http.get("/export/live.m3u")
        calendar = await http.get("/export/calendar.ics")
        schema = await http.get("/schema/openapi.json")
    assert playlist.headers["content-type"].startswith("audio/x-mpegurl")
    lines = playlist.text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert len(lines) == 3  # stream b is dead: not listed
    assert lines[1].startswith('#EXTINF:-1 tvg-id="2026.monaco.race.a"')
    assert lines[2].startswith("http://127.0.0.1:8081/s/2026.monaco.race/a/")
    ics = calendar.text
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert ics.startswith("BEGIN:VCALENDAR\r\n")
    assert ics.count("BEGIN:VEVENT") == 3  # the sprint's time is to be confirmed
    assert "SUMMARY:Monaco Grand Prix\\, Monte Carlo: Race" in ics
    assert "STATUS:CANCELLED" in ics
    assert schema.status_code == 200
    assert "/api/streams" in schema.json()["paths"]
