"""Channels at the gateway on a real nats-server: channel URLs in the public session views,
what is on air from the relay's switch events, and the IPTV exports (M3U and XMLTV)."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from services.gateway.app import create_app
from shared import subjects, topology
from shared.channels import ChannelKeys, ChannelSwitch, SwitchReason, load_channel_keys, rotate
from shared.codec import encode
from shared.sessions import Cancelled, Ended, Live, Scheduled, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from tests.conftest import until_ready
from tests.services.gateway.xmltv import assert_valid_xmltv

NOW = datetime.now(UTC).replace(microsecond=0)
SECRETS = ("secret.test", "TOPSECRET", "COOKIESECRET", "Referer")
RELAY = "http://127.0.0.1:8081"
RACE = "2026.monaco.race"
QUALI = "2026.monaco.qualifying"


def session(kind: SessionKind, start: datetime | None, event: str = "monaco") -> Session:
    return Session(key=f"2026.{event}.{kind.value}", season=2026, round=8,
                   event=f"{event.title()} Grand Prix", circuit="Circuit de Monaco",
                   country="Monaco", kind=kind, name=kind.value.title(), start=start,
                   end=start + timedelta(hours=2) if start else None)


def record(session_key: str, sid: str, health: Health = Health.OK) -> StreamRecord:
    return StreamRecord(id=sid, session=session_key, source_id=sid, source_name=f"Source {sid}",
                        title="Race feed",
                        upstream_url="https://cdn.secret.test/live/master.m3u8?token=TOPSECRET",
                        headers={"Referer": "https://pages.secret.test/"},
                        cookies={"sid": "COOKIESECRET"}, resolved_at=NOW, health=health)


def switch(channel: str, to: str | None, at: datetime, reason: SwitchReason = SwitchReason.START,
           *, from_: str | None = None, detail: str = "") -> bytes:
    return encode(ChannelSwitch(channel=channel, session=channel, from_stream=from_,
                                to_stream=to, reason=reason, detail=detail, at=at))


@pytest.fixture
async def calendar(nc: Client) -> None:
    """A live race with two streams, qualifying tomorrow (no stream yet), a cancelled and an
    ended practice, a sprint to be confirmed, and a race a month away."""
    js = nc.jetstream()
    sessions = await topology.sessions_kv(js)
    race = session(SessionKind.RACE, NOW - timedelta(minutes=10))
    quali = session(SessionKind.QUALIFYING, NOW + timedelta(days=1))
    fp1 = session(SessionKind.PRACTICE_1, NOW - timedelta(days=1))
    fp2 = session(SessionKind.PRACTICE_2, NOW - timedelta(hours=20))
    tbc = session(SessionKind.SPRINT, None)
    far = session(SessionKind.RACE, NOW + timedelta(days=30), event="silverstone")
    await sessions.put(race.key, encode(Live(session=race, at=NOW)))
    await sessions.put(quali.key, encode(Scheduled(session=quali, at=NOW)))
    await sessions.put(fp1.key, encode(Cancelled(session=fp1, at=NOW, reason="rain")))
    await sessions.put(fp2.key, encode(Ended(session=fp2, at=NOW)))
    await sessions.put(tbc.key, encode(Scheduled(session=tbc, at=NOW)))
    await sessions.put(far.key, encode(Scheduled(session=far, at=NOW)))
    streams = await topology.streams_kv(js)
    for sid, health in (("a", Health.OK), ("b", Health.DEAD)):
        await streams.put(subjects.stream_key(race.key, sid), encode(record(race.key, sid, health)))


Start = Callable[..., Awaitable[str]]


@pytest.fixture
def start_gateway(calendar: None, nats_url: str, serve: Callable[[Any], str],
                  tmp_path: Path) -> Start:
    async def start(**env: str) -> str:
        settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path), **env})
        base = serve(create_app(settings, [nats_url]))
        await until_ready(base)
        return base
    return start


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def on_air(http: httpx.AsyncClient, key: str = RACE) -> str | None:
    found: str | None = (await http.get(f"/api/sessions/{key}")).json()["on_air"]
    return found


async def test_sessions_with_streams_carry_their_channel_url(start_gateway: Start,
                                                             tmp_path: Path) -> None:
    """The race's views (one session, live, the list) carry its channel URL, signed for that
    channel by the keys the relay reads; qualifying, without a stream, has none."""
    gateway = await start_gateway()
    async with httpx.AsyncClient(base_url=gateway) as http:
        one = (await http.get(f"/api/sessions/{RACE}")).json()
        quali = (await http.get(f"/api/sessions/{QUALI}")).json()
        live = (await http.get("/api/live")).json()
        listed = {s["session"]["key"]: s for s in (await http.get("/api/sessions")).json()}
    keys = load_channel_keys(None, tmp_path)  # made by the gateway on first use
    url = one["channel_url"]
    assert url == keys.master_url(RELAY, RACE)
    assert url.startswith(f"{RELAY}/c/{RACE}/")
    assert url.endswith("/master.m3u8")
    keys.verify(RACE, url.split("/")[-2])
    assert (one["on_air"], one["switched_at"], one["switch_reason"]) == (None, None, None)
    assert [s["id"] for s in one["streams"]] == ["a", "b"]
    assert quali["channel_url"] is None
    assert live[0]["channel_url"] == url
    assert listed[RACE]["channel_url"] == url
    assert listed[QUALI]["channel_url"] is None


async def test_switch_events_say_which_stream_is_on_air(start_gateway: Start, nc: Client) -> None:
    """The feed's snapshot carries the channel; each switch the relay publishes reaches the
    feed and the REST API; older, malformed and foreign switches change nothing; the switch's
    free-text detail never leaves."""
    gateway = await start_gateway()
    subject = subjects.channel_switched(RACE)
    async with (httpx.AsyncClient(base_url=gateway) as http,
                websockets.connect(f"{gateway.replace('http', 'ws')}/ws?session={RACE}") as ws):
        snapshot = json.loads(await ws.recv())
        assert snapshot["sessions"][0]["channel_url"].startswith(f"{RELAY}/c/{RACE}/")
        assert snapshot["sessions"][0]["on_air"] is None
        started = NOW + timedelta(seconds=1)
        await nc.publish(subject, switch(RACE, "a", started))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message == {"type": "channel", "session": RACE,
                           "channel_url": snapshot["sessions"][0]["channel_url"],
                           "on_air": "a", "switched_at": started.isoformat().replace("+00:00", "Z"),
                           "switch_reason": "start"}
        assert await on_air(http) == "a"

        await nc.publish(subject, switch(RACE, "b", started - timedelta(seconds=1)))  # older
        await nc.publish(subject, b"{not json")
        await nc.publish(subject, switch(RACE, "https://cdn.secret.test/x", started))  # not an id
        await nc.publish(subjects.channel_switched(QUALI), switch(RACE, "b", started))  # foreign
        later = started + timedelta(seconds=5)
        await nc.publish(subject, switch(RACE, "b", later, SwitchReason.STALLED, from_="a",
                                         detail="https://cdn.secret.test/x?token=TOPSECRET"))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (message["on_air"], message["switch_reason"]) == ("b", "stalled")
        one = (await http.get(f"/api/sessions/{RACE}")).text
        live = (await http.get("/api/live")).text
    assert json.loads(one)["on_air"] == "b"
    assert json.loads(live)[0]["switched_at"] == later.isoformat().replace("+00:00", "Z")
    for text in (one, live, json.dumps([snapshot, message])):
        for secret in SECRETS:
            assert secret not in text


async def test_a_sessions_first_stream_brings_its_channel_to_the_feed(start_gateway: Start,
                                                                      nc: Client) -> None:
    """Qualifying has no stream, so no channel; its first stream arrives and the feed says the
    channel is there, right after the stream."""
    gateway = await start_gateway()
    async with websockets.connect(f"{gateway.replace('http', 'ws')}/ws?session={QUALI}") as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["sessions"][0]["channel_url"] is None
        kv = await topology.streams_kv(nc.jetstream())
        await kv.put(subjects.stream_key(QUALI, "a"), encode(record(QUALI, "a")))
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [m["type"] for m in got] == ["stream", "channel"]
        assert got[1]["channel_url"].startswith(f"{RELAY}/c/{QUALI}/")
        await kv.delete(subjects.stream_key(QUALI, "a"))
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
    assert [m["type"] for m in got] == ["stream_removed", "channel"]
    assert got[1]["channel_url"] is None


async def test_a_gateway_started_later_reads_what_is_on_air_from_the_switch_stream(
        start_gateway: Start, nc: Client) -> None:
    """Where a JetStream stream keeps the switches, a gateway that starts after them knows
    what each channel has on air (the last switch of each)."""
    js = nc.jetstream()
    subject = subjects.channel_switched(RACE)
    try:  # the topology may declare it (the relay's CHANNELS); else the test does
        await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        await js.add_stream(StreamConfig(name="TEST_CHANNELS",
                                         subjects=[subjects.CHANNEL_SWITCHES_ALL]))
    await js.publish(subject, switch(RACE, "a", NOW))
    await js.publish(subject, switch(RACE, "b", NOW + timedelta(seconds=3), SwitchReason.DEAD, from_="a"))
    gateway = await start_gateway()
    async with httpx.AsyncClient(base_url=gateway) as http:
        await until(lambda: _is(on_air(http), "b"), "the gateway knows b is on air")
        await js.publish(subject, switch(RACE, "a", NOW + timedelta(seconds=9), SwitchReason.ERRORS))
        await until(lambda: _is(on_air(http), "a"), "and follows the next switch")


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_channel_keys_from_the_setting_sign_and_a_rotation_is_taken_up(
        start_gateway: Start, tmp_path: Path) -> None:
    """Keys given as a setting sign the URLs (no keys file is made); without it the keys file
    is re-read, so a rotation reaches new URLs without a restart."""
    configured = await start_gateway(SLIPSTREAM_RELAY_CHANNEL_KEYS="k7:0123456789abcdef0123")
    async with httpx.AsyncClient(base_url=configured) as http:
        url = (await http.get(f"/api/sessions/{RACE}")).json()["channel_url"]
    assert url == ChannelKeys.from_setting("k7:0123456789abcdef0123").master_url(RELAY, RACE)
    assert not (tmp_path / "channel.keys").exists()

    gateway = await start_gateway()
    async with httpx.AsyncClient(base_url=gateway) as http:
        first = (await http.get(f"/api/sessions/{RACE}")).json()["channel_url"]
        assert first.split("/")[-2].startswith("k1.")
        rotate(tmp_path)

        async def rotated() -> bool:
            url = (await http.get(f"/api/sessions/{RACE}")).json()["channel_url"]
            return str(url).split("/")[-2].startswith("k2.")
        await until(rotated, "URLs signed with the new key", within=10)


async def test_the_channel_list_and_the_guide_for_iptv_players(start_gateway: Start,
                                                               tmp_path: Path) -> None:
    """The M3U lists "live now" then the live and upcoming sessions with signed channel URLs,
    logos and the guide; the guide is valid XMLTV with the same channel ids and the sessions
    as programmes; neither says anything upstream."""
    gateway = await start_gateway()
    async with httpx.AsyncClient(base_url=gateway) as http:
        playlist = await http.get("/export/channels.m3u")
        guide = await http.get("/export/guide.xml")
        logo = await http.get("/export/logos/2026.monaco.race.png")
        svg = await http.get("/export/logos/2026.monaco.race.svg")
        no_logo = await http.get("/export/logos/..%2Fetc.svg")
        no_kind = await http.get("/export/logos/2026.monaco.race.gif")
    assert playlist.status_code == 200
    assert playlist.headers["content-type"].startswith("audio/x-mpegurl")
    lines = playlist.text.splitlines()
    assert lines[0].startswith(f'#EXTM3U url-tvg="{gateway}/export/guide.xml"')
    entries = list(zip(lines[1::2], lines[2::2], strict=True))
    tvg_ids = [line.split('tvg-id="')[1].split('"')[0] for line, _ in entries]
    assert tvg_ids == ["live-now", RACE, QUALI]  # not cancelled, ended, unconfirmed or far
    keys = load_channel_keys(None, tmp_path)
    for channel, (info, url) in zip(tvg_ids, entries, strict=True):
        assert url == keys.master_url(RELAY, channel)
        assert f'tvg-logo="{gateway}/export/logos/{channel}.png"' in info
        assert 'group-title="' in info
        assert 'tvg-name="' in info
    assert 'tvg-name="Monaco Grand Prix: Race"' in entries[1][0]

    assert guide.status_code == 200
    assert guide.headers["content-type"].startswith("application/xml")
    assert_valid_xmltv(guide.text, tmp_path)
    root = ET.fromstring(guide.text)  # noqa: S314 - our own output
    assert [c.get("id") for c in root.iter("channel")] == tvg_ids
    on = {(p.get("channel"), p.findtext("title")) for p in root.iter("programme")}
    assert on == {("live-now", "Practice-2"), ("live-now", "Race"), ("live-now", "Qualifying"),
                  (RACE, "Race"), (QUALI, "Qualifying")}
    for text in (playlist.text, guide.text):
        for secret in SECRETS:
            assert secret not in text
    assert logo.status_code == 200
    assert logo.headers["content-type"] == "image/png"
    assert logo.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert no_logo.status_code == 404
    assert no_kind.status_code == 404
    assert playlist.headers["cache-control"] == "no-store"


async def test_exports_need_the_gateway_token_and_carry_it_for_the_player(
        start_gateway: Start) -> None:
    """With a gateway token, the exports need it; given as ?token= it is repeated in the
    guide's URL (players send nothing else), never in channel URLs; logos are public."""
    token = "iptv-token-0123456789abcdef"
    gateway = await start_gateway(SLIPSTREAM_GATEWAY_TOKEN=token)
    async with httpx.AsyncClient(base_url=gateway) as http:
        refused = await http.get("/export/channels.m3u")
        refused_guide = await http.get("/export/guide.xml")
        playlist = await http.get("/export/channels.m3u", params={"token": token})
        guide = await http.get("/export/guide.xml", params={"token": token})
        logo = await http.get("/export/logos/live-now.png")
    assert (refused.status_code, refused_guide.status_code) == (401, 401)
    assert playlist.status_code == 200
    assert guide.status_code == 200
    lines = playlist.text.splitlines()
    assert lines[0].startswith(f'#EXTM3U url-tvg="{gateway}/export/guide.xml?token={token}"')
    assert all(token not in line for line in lines[1:])
    assert token not in guide.text
    assert logo.status_code == 200
