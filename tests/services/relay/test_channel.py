"""Channels on the relay, on a real nats-server, in front of two real demo origins of one session
(same clock-driven broadcast) that tests can freeze, break or make flaky: switches and their
events, continuity of the numbering, shared upstream fetches, refused links, live now."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from nats.aio.client import Client

from services.demo.app import create_app as demo_app
from services.relay.app import create_app
from services.relay.channel import Channels
from shared import subjects, topology
from shared.channels import LIVE_NOW, ChannelSwitch, load_channel_keys, revoke, rotate
from shared.codec import decode, encode
from shared.settings import Settings, load_settings
from shared.streams import Health, StreamRecord
from tests.system import go_live_event

SESSION = "2026.demo.race"
pytestmark = pytest.mark.timeout(120)


class Origin:
    """A demo origin that counts requests per path and can be frozen (its clock stops: the
    playlist stops advancing), killed (503 for everything) or made flaky (every second segment
    answers 500)."""

    def __init__(self) -> None:
        self.frozen_at: datetime | None = None
        self.dead = False
        self.flaky = False
        self.hits: Counter[str] = Counter()
        self.app = demo_app(token="tok", cookie="c00kie", now=self.now)

    def now(self) -> datetime:
        return self.frozen_at or datetime.now(UTC)

    def freeze(self) -> None:
        self.frozen_at = datetime.now(UTC)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            self.hits[path] += 1
            name = path.rsplit("/", 1)[-1]
            failing = self.dead or (self.flaky and name.endswith(".ts") and
                                    int(name.partition(".")[0]) % 2 == 0)
            if failing:
                await send({"type": "http.response.start", "status": 503 if self.dead else 500,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"no"})
                return
        await self.app(scope, receive, send)

    def segment_hits(self) -> dict[str, int]:
        return {p: n for p, n in self.hits.items() if p.endswith(".ts")}


class Setup:
    def __init__(self, settings: Settings, relay: str, origins: dict[str, Origin],
                 bases: dict[str, str], channels: Channels) -> None:
        self.channels = channels
        self.settings = settings
        self.relay = relay
        self.origins = origins
        self.bases = bases

    def url(self, channel: str = SESSION) -> str:
        keys = load_channel_keys(None, self.settings.data_path)
        return keys.master_url(self.relay, channel)


def record(stream_id: str, url: str, priority: int = 0) -> StreamRecord:
    return StreamRecord(id=stream_id, session=SESSION, source_id=stream_id, upstream_url=url,
                        resolved_at=datetime.now(UTC), health=Health.OK, priority=priority)


@pytest.fixture
async def switches(nc: Client) -> AsyncIterator[list[ChannelSwitch]]:
    """Every channel switch published, as it arrives."""
    got: list[ChannelSwitch] = []

    async def handle(msg: Any) -> None:
        got.append(decode(msg.data, ChannelSwitch))

    sub = await nc.subscribe(subjects.CHANNEL_SWITCHES_ALL, cb=handle)
    yield got
    await sub.unsubscribe()


@pytest.fixture
async def setup(nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> Setup:
    """Origins "main" (priority 20) and "backup" (10) of one session, and the relay."""
    origins = {"main": Origin(), "backup": Origin()}
    bases = {name: serve(origin) for name, origin in origins.items()}
    settings = load_settings(env={
        "SLIPSTREAM_DATA_DIR": str(tmp_path),
        "SLIPSTREAM_EGRESS_ALLOW": ",".join(b.removeprefix("http://") for b in bases.values())})
    kv = await topology.streams_kv(nc.jetstream())
    for name, priority in (("main", 20), ("backup", 10)):
        await kv.put(subjects.stream_key(SESSION, name),
                     encode(record(name, f"{bases[name]}/live/master.m3u8", priority)))
    app = create_app(settings, [nats_url])
    relay = serve(app)
    return Setup(settings, relay, origins, bases, app.state.channels)


async def get(http: httpx.AsyncClient, url: str) -> httpx.Response:
    got = await http.get(url)
    assert got.status_code == 200, (url, got.status_code, got.text)
    return got


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Seconds it took ``predicate`` to hold."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


class Viewer:
    """Follows one slot of a channel as a player would, checking the numbering as it goes."""

    def __init__(self, http: httpx.AsyncClient, slot_url: str) -> None:
        self.http = http
        self.slot_url = slot_url
        self.by_number: dict[int, str] = {}
        self.discontinuity: dict[int, int] = {}

    async def refresh(self) -> m3u8.M3U8:
        got = await get(self.http, self.slot_url)
        playlist = m3u8.loads(got.text)
        dseq = playlist.discontinuity_sequence or 0
        for i, seg in enumerate(playlist.segments):
            number = playlist.media_sequence + i
            dseq += 1 if seg.discontinuity else 0
            # A number always names the same segment, with the same discontinuity number.
            assert self.by_number.setdefault(number, seg.uri) == seg.uri, number
            assert self.discontinuity.setdefault(number, dseq) == dseq, number
        return playlist

    async def follow(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await self.refresh()
            await asyncio.sleep(0.5)

    def numbers(self) -> list[int]:
        return sorted(self.by_number)


async def slot_url(http: httpx.AsyncClient, master_url: str, slot: int = 0) -> str:
    master = m3u8.loads((await get(http, master_url)).text)
    return master_url.rsplit("/", 1)[0] + "/" + master.playlists[slot].uri


async def test_a_channel_plays_the_best_stream_and_announces_it(setup: Setup,
                                                                switches: list[ChannelSwitch]) -> None:
    """The master offers the session's variants as slots; the higher-priority stream goes on
    air (a "start" event), its segments play through relative channel URLs."""
    async with httpx.AsyncClient(timeout=10) as http:
        master = m3u8.loads((await get(http, setup.url())).text)
        assert [p.stream_info.resolution for p in master.playlists] == [(640, 360), (320, 180)]
        media = m3u8.loads((await get(http, await slot_url(http, setup.url()))).text)
        assert media.segments
        assert all(s.uri.startswith(f"{SESSION}.main/m/") for s in media.segments)
        for host in ("127.0.0.1", "http"):
            assert host not in media.dumps()
        segment = await get(http, setup.url().rsplit("/", 1)[0] + "/" + media.segments[-1].uri)
        assert segment.content[0] == 0x47
        assert segment.headers["content-type"] == "video/mp2t"
    await wait_for(lambda: len(switches) == 1, 5, "the start event")
    assert (switches[0].channel, switches[0].session) == (SESSION, SESSION)
    assert (switches[0].from_stream, switches[0].to_stream, switches[0].reason) == \
        (None, "main", "start")


async def test_a_dead_stream_is_replaced_inside_the_same_playlist(setup: Setup,
                                                                  switches: list[ChannelSwitch]) -> None:
    """The stream on air dies: one switch (reason dead) to the other, the numbering carries on
    with a discontinuity at the join."""
    async with httpx.AsyncClient(timeout=10) as http:
        viewer = Viewer(http, await slot_url(http, setup.url()))
        await viewer.follow(3)
        setup.origins["main"].dead = True
        await viewer.follow(8)
        playlist = await viewer.refresh()
    assert [(s.from_stream, s.to_stream, s.reason) for s in switches] == \
        [(None, "main", "start"), ("main", "backup", "dead")]
    numbers = viewer.numbers()
    assert numbers == list(range(numbers[0], numbers[-1] + 1))  # no hole in the numbering
    uris = [viewer.by_number[n] for n in numbers]
    joins = [n for n in numbers[1:] if viewer.by_number[n].startswith(f"{SESSION}.backup/")
             and viewer.by_number[n - 1].startswith(f"{SESSION}.main/")]
    assert len(joins) == 1
    assert viewer.discontinuity[joins[0]] == viewer.discontinuity[joins[0] - 1] + 1
    assert uris[-1].startswith(f"{SESSION}.backup/")
    assert playlist.segments[-1].uri.startswith(f"{SESSION}.backup/")


async def test_a_frozen_playlist_is_left_within_three_target_durations(
        setup: Setup, switches: list[ChannelSwitch]) -> None:
    """The stream on air stops advancing: within three target durations (2 s each) the channel
    is on the other stream, with reason "stalled"."""
    async with httpx.AsyncClient(timeout=10) as http:
        viewer = Viewer(http, await slot_url(http, setup.url()))
        await viewer.follow(2.5)
        setup.origins["main"].freeze()
        frozen = time.monotonic()
        took = await wait_for(lambda: len(switches) >= 2, 10, "the switch")
        await viewer.follow(3)
    assert (switches[1].from_stream, switches[1].to_stream, switches[1].reason) == \
        ("main", "backup", "stalled")
    # The freeze happened somewhere in the demo's last 2 s segment: count from its start.
    assert took <= 3 * 2.0, f"switched {took:.1f} s after the freeze"
    assert time.monotonic() - frozen > took


async def test_an_intermittent_stream_costs_one_switch_not_a_series(
        setup: Setup, switches: list[ChannelSwitch]) -> None:
    """Every second segment of the stream on air fails: the channel switches away once, and
    stays away (the flaky stream is benched, and it is not worth leaving a healthy stream)."""
    setup.origins["main"].flaky = True
    async with httpx.AsyncClient(timeout=10) as http:
        base = setup.url().rsplit("/", 1)[0]
        viewer = Viewer(http, await slot_url(http, setup.url()))
        fetched: set[str] = set()
        until = time.monotonic() + 20
        while time.monotonic() < until:
            playlist = await viewer.refresh()
            for seg in playlist.segments[-3:]:
                if seg.uri not in fetched:
                    fetched.add(seg.uri)
                    await http.get(f"{base}/{seg.uri}")
            await asyncio.sleep(0.5)
    reasons = [(s.from_stream, s.to_stream, s.reason) for s in switches]
    assert reasons == [(None, "main", "start"), ("main", "backup", "errors")], reasons


async def test_a_hundred_viewers_cost_the_origin_one_request_per_segment(setup: Setup) -> None:
    """100 viewers of a channel: the origin on air sees each segment requested once."""
    async with httpx.AsyncClient(timeout=10) as http:
        url = await slot_url(http, setup.url())
    base = setup.url().rsplit("/", 1)[0]
    origin = setup.origins["main"]
    origin.hits.clear()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        for newest in (3, 1):  # the window, then its next segment once the live edge moved
            playlists = await asyncio.gather(*(http.get(url) for _ in range(100)))
            assert {p.status_code for p in playlists} == {200}
            segs = m3u8.loads(playlists[0].text).segments[-newest:]
            bodies = await asyncio.gather(*(http.get(f"{base}/{s.uri}")
                                            for s in segs for _ in range(100)))
            assert {b.status_code for b in bodies} == {200}
            await asyncio.sleep(2.1)
    hits = origin.segment_hits()
    assert hits
    assert set(hits.values()) == {1}, hits
    assert setup.origins["backup"].segment_hits() == {}


async def test_revoked_and_forged_channel_links_are_refused(setup: Setup) -> None:
    """A link signed by a revoked key, a forged signature, a link of another channel and a
    malformed token are refused with 403 and a readable reason, before anything upstream."""
    data = setup.settings.data_path
    old = setup.url()
    other = load_channel_keys(None, data).master_url(setup.relay, "2026.demo.sprint")
    async with httpx.AsyncClient(timeout=10) as http:
        await get(http, old)
        rotate(data)
        await asyncio.sleep(1.2)  # the relay re-reads the keys file at most once a second
        new = setup.url()
        assert new != old
        await get(http, new)
        await get(http, old)  # still valid: its key is still listed
        revoke(data, old.split("/")[-2].split(".")[0])
        await asyncio.sleep(1.2)  # the relay re-reads the keys file at most once a second
        for host in setup.origins.values():
            host.hits.clear()
        refused = await http.get(old)
        assert refused.status_code == 403
        assert "revoked" in refused.json()["error"]
        token = new.split("/")[-2]
        forged = new.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
        assert (await http.get(forged)).status_code == 403
        assert "signature" in (await http.get(forged)).json()["error"]
        replayed = other.replace("2026.demo.sprint", SESSION)
        assert (await http.get(replayed)).status_code == 403
        assert (await http.get(new.replace(token, "garbage"))).status_code == 403
        segment = new.rsplit("/", 1)[0].replace(token, token[:-4] + "AAAA") + f"/{SESSION}.main/m/x.ts"
        assert (await http.get(segment)).status_code == 403
        assert (await http.get(f"{setup.relay}/c/nope/{token}/master.m3u8")).status_code == 404
        await get(http, new)
    assert all(not o.hits for o in setup.origins.values())


async def test_live_now_plays_the_slate_then_the_live_session(
        setup: Setup, nc: Client, switches: list[ChannelSwitch]) -> None:
    """With no session live, "live now" plays the off-air slate (real H.264/AAC segments);
    when the session goes live it switches to it (reason "session") in the same playlist."""
    async with httpx.AsyncClient(timeout=10) as http:
        url = setup.url(LIVE_NOW)
        viewer = Viewer(http, await slot_url(http, url))
        slate = await viewer.refresh()
        assert slate.segments
        assert all(s.uri.startswith("_slate/m/") for s in slate.segments)
        body = await get(http, url.rsplit("/", 1)[0] + "/" + slate.segments[-1].uri)
        assert body.content[0] == 0x47
        await go_live_event(nc, SESSION)
        await wait_for(lambda: any(s.channel == LIVE_NOW for s in switches), 10, "the switch")
        await viewer.follow(2)
    event = next(s for s in switches if s.channel == LIVE_NOW)
    assert (event.session, event.from_stream, event.to_stream, event.reason) == \
        (SESSION, None, "main", "session")
    assert viewer.by_number[max(viewer.by_number)].startswith(f"{SESSION}.main/")


async def test_a_live_session_has_its_stream_on_air_before_anyone_watches(
        setup: Setup, nc: Client, switches: list[ChannelSwitch]) -> None:
    """When a session with streams goes live, its channel decides what is on air and announces
    it without a viewer; the last message of the channel's subject on the CHANNELS stream says
    what is on air (what the gateway reads when it starts)."""
    await go_live_event(nc, SESSION)
    await wait_for(lambda: any(s.channel == SESSION for s in switches), 10, "the start event")
    event = next(s for s in switches if s.channel == SESSION)
    assert (event.from_stream, event.to_stream, event.reason) == (None, "main", "start")
    last = await nc.jetstream().get_last_msg(topology.CHANNELS_STREAM,
                                             subjects.channel_switched(SESSION))
    assert decode(last.data, ChannelSwitch) == event


async def test_a_re_resolved_stream_is_spliced_in_without_a_switch(
        setup: Setup, nc: Client, switches: list[ChannelSwitch]) -> None:
    """The extractor re-resolves the stream on air to a new upstream URL: the channel follows
    it in the same playlist (one discontinuity, numbering carried on) and announces nothing."""
    kv = await topology.streams_kv(nc.jetstream())
    async with httpx.AsyncClient(timeout=10) as http:
        viewer = Viewer(http, await slot_url(http, setup.url()))
        await viewer.follow(2)
        await kv.put(subjects.stream_key(SESSION, "main"),
                     encode(record("main", f"{setup.bases['main']}/t/tok/master.m3u8", 20)))
        await viewer.follow(5)
    assert [(s.from_stream, s.to_stream) for s in switches] == [(None, "main")]
    assert any(p.startswith("/t/tok/") for p in setup.origins["main"].hits)
    numbers = viewer.numbers()
    assert numbers == list(range(numbers[0], numbers[-1] + 1))
    # The join: the first segment from the new URL opens with a discontinuity.
    entries = list(setup.channels.channels[SESSION].slots[0].timeline.entries)
    first = next(i for i, e in enumerate(entries) if "/t/tok/" in e.source)
    assert first > 0
    assert "/live/" in entries[first - 1].source
    assert entries[first].discontinuity
