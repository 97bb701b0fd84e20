"""The relay on a real nats-server, in front of the real demo origin: playlists, segments,
authorisation, shared upstream fetches, refusals, and real players (ffprobe, streamlink)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import Cookie
from litestar.params import FromPath
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families
from streamlink import Streamlink

from services.demo.app import create_app as demo_app
from services.relay.app import create_app
from shared import subjects, topology
from shared.codec import encode
from shared.relay_urls import Signer, load_secret
from shared.settings import Settings, load_settings
from shared.streams import Health, StreamRecord
from tests.services.extractor.conftest import Counting
from tests.shared.test_egress import Origin

SESSION = "2026.demo.race"
pytestmark = pytest.mark.timeout(120)


def record(stream_id: str, url: str, **kw: Any) -> StreamRecord:
    return StreamRecord(id=stream_id, session=SESSION, source_id=stream_id, upstream_url=url,
                        resolved_at=datetime.now(UTC), health=Health.OK, **kw)


class Setup:
    def __init__(self, settings: Settings, relay: str, origin: Counting, demo: str,
                 state: Any = None) -> None:
        self.settings = settings
        self.relay = relay
        self.state = state
        self.origin = origin
        self.demo = demo
        self.signer = Signer(load_secret(None, settings.data_path))

    def url(self, stream_id: str, ttl: float = 600) -> str:
        return self.signer.master_url(self.relay, SESSION, stream_id, ttl)


@pytest.fixture
async def setup(nc: Client, nats_url: str, serve: Callable[[Any], str],
                tmp_path: Path) -> Setup:
    """A counting demo origin, a stream record for it in the KV, and the relay serving it."""
    origin = Counting(demo_app(token="tok", cookie="c00kie"))
    demo = serve(origin)
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": demo.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "plain"), encode(record("plain", f"{demo}/live/master.m3u8")))
    await kv.put(subjects.stream_key(SESSION, "secure"), encode(record(
        "secure", f"{demo}/secure/master.m3u8", headers={"Referer": f"{demo}/embed/player"},
        cookies={"demo_session": "c00kie"})))
    app = create_app(settings, [nats_url])
    relay = serve(app)
    return Setup(settings, relay, origin, demo, app.state.relay)


async def http_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url)


async def test_master_and_media_playlists_are_relayed_without_upstream_details(setup: Setup) -> None:
    """Every URI is a relay URL; no upstream host, path or credential is left."""
    master = await http_get(setup.url("secure"))
    assert master.status_code == 200, master.text
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert master.headers["x-content-type-options"] == "nosniff"
    parsed = m3u8.loads(master.text)
    assert len(parsed.playlists) == 2
    host = setup.demo.removeprefix("http://")
    assert host not in master.text
    media = await http_get(setup.relay + parsed.playlists[0].uri)
    assert media.status_code == 200
    seg_uri = m3u8.loads(media.text).segments[-1].uri
    assert seg_uri.endswith(".ts")
    assert host not in media.text
    segment = await http_get(setup.relay + seg_uri)
    assert segment.status_code == 200
    assert segment.content[0] == 0x47
    assert segment.headers["content-type"] == "video/mp2t"


async def test_links_are_checked(setup: Setup) -> None:
    """Forged 403, expired 410, unknown stream 404, a resource never named by a playlist 404;
    a link signed for one stream replayed for another is refused before any upstream request."""
    good = setup.url("plain")
    forged = good.replace("/plain/", "/secure/")
    setup.origin.hits.clear()
    assert (await http_get(forged)).status_code == 403
    assert (await http_get(setup.url("plain", ttl=-5))).status_code == 410
    assert setup.origin.hits == {}  # refused before the origin was asked anything
    assert (await http_get(setup.url("nope"))).status_code == 404
    prefix = good.rsplit("/", 1)[0]
    assert (await http_get(f"{prefix}/m/AAAAAAAAAAAA.ts")).status_code == 404
    assert (await http_get(f"{setup.relay}/s/{SESSION}/plain/garbage/master.m3u8")).status_code == 403
    assert (await http_get(f"{setup.relay}/relay?url=http://example.org/")).status_code == 404


async def test_a_hundred_viewers_cost_one_upstream_request_each(setup: Setup) -> None:
    """100 concurrent viewers: one upstream request per playlist refresh and per segment."""
    master = m3u8.loads((await http_get(setup.url("plain"))).text)
    media_url = setup.relay + master.playlists[1].uri
    setup.origin.hits.clear()
    # New connections only: a reused keep-alive connection that the server closes at that very
    # moment is a client race, not what this test is about.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        playlists = await asyncio.gather(*(http.get(media_url) for _ in range(100)))
        assert {p.status_code for p in playlists} == {200}
        segs = m3u8.loads(playlists[0].text).segments[-3:]
        bodies = await asyncio.gather(*(http.get(setup.relay + s.uri)
                                        for s in segs for _ in range(100)))
    assert {b.status_code for b in bodies} == {200}
    assert len({len(b.content) for b in bodies[:100]}) == 1
    media_hits = {p: n for p, n in setup.origin.hits.items() if p.endswith("index.m3u8")}
    seg_hits = {p: n for p, n in setup.origin.hits.items() if p.endswith(".ts")}
    assert sum(media_hits.values()) <= 2  # one fetch, or two if a refresh fell due mid-test
    assert len(seg_hits) == 3
    assert set(seg_hits.values()) == {1}


async def test_a_playlist_pointing_at_a_forbidden_port_is_refused(
        nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> None:
    """Segments on a loopback port outside the allow-list: refused, and that port sees nothing."""
    forbidden = Origin()
    forbidden_base = serve(forbidden.app())

    @get("/evil.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def evil() -> str:
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{forbidden_base}/seg.ts\n"

    allowed = serve(Litestar([evil], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": allowed.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "evil"), encode(record("evil", f"{allowed}/evil.m3u8")))
    relay = serve(create_app(settings, [nats_url]))
    signer = Signer(load_secret(None, settings.data_path))
    playlist = await http_get(signer.master_url(relay, SESSION, "evil", 600))
    assert playlist.status_code == 200
    seg = await http_get(relay + m3u8.loads(playlist.text).segments[0].uri)
    assert seg.status_code == 502
    assert "egress" in seg.json()["error"]
    assert forbidden.hits == []


async def test_html_served_as_a_playlist_is_a_502(nc: Client, nats_url: str,
                                                  serve: Callable[[Any], str], tmp_path: Path) -> None:
    """Upstream garbage gives a typed 502, not a stray exception."""
    @get("/page.m3u8", media_type=MediaType.HTML, sync_to_thread=False)
    def page() -> str:
        return "<html>nope</html>"

    upstream = serve(Litestar([page], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": upstream.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "html"), encode(record("html", f"{upstream}/page.m3u8")))
    relay = serve(create_app(settings, [nats_url]))
    signer = Signer(load_secret(None, settings.data_path))
    got = await http_get(signer.master_url(relay, SESSION, "html", 600))
    assert got.status_code == 502
    assert "no #EXTM3U" in got.json()["error"]


async def test_compressed_playlists_and_segments_are_decoded(
        nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> None:
    """A gzip playlist and a segment compressed although it was asked for as it is (identity)
    reach viewers decoded; neither a Content-Encoding header nor compressed bytes leak."""
    asked: list[str] = []

    @get("/z.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def playlist(request: Request[Any, Any, Any]) -> Response[bytes]:
        asked.append(f"playlist {request.headers.get('accept-encoding')}")
        text = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nz.ts\n"
        return Response(gzip.compress(text), media_type="application/vnd.apple.mpegurl",
                        headers={"Content-Encoding": "gzip"})

    @get("/z.ts", media_type="video/mp2t", sync_to_thread=False)
    def seg(request: Request[Any, Any, Any]) -> Response[bytes]:
        asked.append(f"segment {request.headers.get('accept-encoding')}")
        return Response(zlib.compress(b"\x47" * 18800), media_type="video/mp2t",
                        headers={"Content-Encoding": "deflate"})

    upstream = serve(Litestar([playlist, seg], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": upstream.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "zip"), encode(record("zip", f"{upstream}/z.m3u8")))
    relay = serve(create_app(settings, [nats_url]))
    signer = Signer(load_secret(None, settings.data_path))
    async with httpx.AsyncClient(timeout=20) as http:
        media = await http.get(signer.master_url(relay, SESSION, "zip", 600))
        assert media.status_code == 200, media.text
        segment = await http.get(relay + m3u8.loads(media.text).segments[0].uri)
    assert segment.status_code == 200
    assert "content-encoding" not in segment.headers
    assert segment.content == b"\x47" * 18800
    assert asked == ["playlist gzip, deflate", "segment identity"]


async def test_a_removed_stream_answers_gone(setup: Setup, nc: Client) -> None:
    """When the extractor removes a stream, its viewers get 410, and the relay forgets what
    it had learned about it (its memory follows the streams that exist)."""
    url = setup.url("plain")
    master = await http_get(url)
    assert master.status_code == 200
    assert (await http_get(setup.relay + m3u8.loads(master.text).playlists[0].uri)).status_code == 200
    key = subjects.stream_key(SESSION, "plain")
    assert setup.state.refs.get(key)
    assert any(k == key for k, _ in setup.state.continuity)
    kv = await topology.streams_kv(nc.jetstream())
    await kv.delete(subjects.stream_key(SESSION, "plain"))
    for _ in range(50):
        if (await http_get(url)).status_code == 410:
            break
        await asyncio.sleep(0.05)
    assert (await http_get(url)).status_code == 410
    assert key not in setup.state.refs
    assert not [k for k, _ in setup.state.continuity if k == key]
    assert not [k for k, _ in setup.state.orders if k == key]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by make test")
def test_ffmpeg_reads_the_relayed_stream(setup: Setup) -> None:
    """ffprobe sees both renditions; ffmpeg reads six seconds of the live stream."""
    url = setup.url("secure")
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width",
                            "-of", "csv=p=0", url], capture_output=True, text=True, timeout=60,
                           check=False)
    assert probe.returncode == 0, probe.stderr
    assert "video,640" in probe.stdout
    started = time.monotonic()
    read = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-t", "6", "-c", "copy", "-f",
                           "null", "-"], capture_output=True, text=True, timeout=90, check=False)
    assert read.returncode == 0, read.stderr
    assert time.monotonic() - started < 80


def test_streamlink_resolves_and_reads_the_relayed_stream(setup: Setup) -> None:
    """streamlink (as a library) opens the relayed master playlist and reads bytes from it."""
    session = Streamlink()
    streams = session.streams(f"hls://{setup.url('plain')}")
    assert {"360p", "180p"} <= set(streams)
    fd = streams["best"].open()
    try:
        data = fd.read(188 * 100)
    finally:
        fd.close()
    assert data[0] == 0x47


async def test_head_and_byte_ranges_on_segments(setup: Setup) -> None:
    """HEAD gives the length without a body; a Range gives 206 with exactly those bytes."""
    master = m3u8.loads((await http_get(setup.url("plain"))).text)
    media = m3u8.loads((await http_get(setup.relay + master.playlists[1].uri)).text)
    url = setup.relay + media.segments[-1].uri
    whole = (await http_get(url)).content
    async with httpx.AsyncClient(timeout=10) as http:
        head = await http.head(url)
        part = await http.get(url, headers={"Range": "bytes=188-375"})
        tail = await http.get(url, headers={"Range": "bytes=-188"})
        bad = await http.get(url, headers={"Range": "bytes=999999999-"})
        head_master = await http.head(setup.url("plain"))
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(whole)
    assert part.status_code == 206
    assert part.content == whole[188:376]
    assert part.headers["content-range"] == f"bytes 188-375/{len(whole)}"
    assert tail.content == whole[-188:]
    assert bad.status_code == 416
    assert head_master.status_code == 200
    assert int(head_master.headers["content-length"]) > 0


async def test_ll_hls_blocking_parameters_reach_the_origin(
        nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> None:
    """_HLS_msn and _HLS_part are passed upstream (and such answers are not shared)."""
    seen: list[str] = []

    @get("/ll.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def ll(request: Request[Any, Any, Any]) -> str:
        seen.append(str(request.url.query))
        return "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n"

    kv = await topology.streams_kv(nc.jetstream())
    master_text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nll.m3u8\n"

    @get("/m.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def m() -> str:
        return master_text

    upstream2 = serve(Litestar([ll, m], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": upstream2.removeprefix("http://")})
    await kv.put(subjects.stream_key(SESSION, "ll"), encode(record("ll", f"{upstream2}/m.m3u8")))
    relay = serve(create_app(settings, [nats_url]))
    signer = Signer(load_secret(None, settings.data_path))
    master = m3u8.loads((await http_get(signer.master_url(relay, SESSION, "ll", 600))).text)
    variant = relay + master.playlists[0].uri
    assert (await http_get(variant + "?_HLS_msn=7&_HLS_part=2")).status_code == 200
    assert (await http_get(variant + "?_HLS_msn=8")).status_code == 200
    assert "_HLS_msn=7&_HLS_part=2" in seen
    assert "_HLS_msn=8" in seen


async def test_another_replica_serves_links_it_never_minted(setup: Setup, nats_url: str,
                                                           serve: Callable[[Any], str]) -> None:
    """A second relay (same secret) learns the stream's resources and serves the first's links."""
    master = m3u8.loads((await http_get(setup.url("plain"))).text)
    media = m3u8.loads((await http_get(setup.relay + master.playlists[0].uri)).text)
    other = serve(create_app(setup.settings, [nats_url]))
    segment = await http_get(other + media.segments[-1].uri)
    assert segment.status_code == 200
    assert segment.content[0] == 0x47


async def test_viewers_keep_playing_when_the_stream_is_re_resolved(
        setup: Setup, nc: Client, nats_url: str, serve: Callable[[Any], str]) -> None:
    """A new upstream URL: the viewer's playlist continues its numbering, with a discontinuity."""
    @get("/m.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def new_master() -> str:
        return "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000\nv.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\nw.m3u8\n"

    @get("/{name:str}", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def new_media(name: FromPath[str]) -> str:
        segments = "".join(f"#EXTINF:2.0,\nn{7 + i}.ts\n" for i in range(4))
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n{segments}"

    other = serve(Litestar([new_master, new_media], openapi_config=None, logging_config=None))
    allow = f"{setup.demo.removeprefix('http://')},{other.removeprefix('http://')}"
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(setup.settings.data_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": allow})
    relay = serve(create_app(settings, [nats_url]))
    master = m3u8.loads((await http_get(setup.url("plain").replace(setup.relay, relay))).text)
    variant = relay + master.playlists[0].uri
    before = m3u8.loads((await http_get(variant)).text)
    last = before.media_sequence + len(before.segments) - 1
    # The extractor re-resolves the stream to another upstream.
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "plain"), encode(record("plain", f"{other}/m.m3u8")))
    after = None
    for _ in range(60):
        await asyncio.sleep(0.1)
        got = await http_get(variant)
        if got.status_code == 200 and "#EXT-X-DISCONTINUITY\n" in got.text:
            after = m3u8.loads(got.text)
            break
    assert after is not None, got.text
    assert after.media_sequence == last + 1
    assert after.segments[0].discontinuity
    assert after.discontinuity_sequence == before.discontinuity_sequence + sum(
        s.discontinuity for s in before.segments)


async def metric_values(relay: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample /metrics shows, by name and labels."""
    text = (await http_get(f"{relay}/metrics")).text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_count_fetches_and_bytes_per_stream(setup: Setup) -> None:
    """/metrics shows upstream fetches, cache results and bytes out, labelled by stream. The
    counters are process-wide (earlier tests in this process counted this stream too), so what
    is checked is what these requests added."""
    key = f"{SESSION}.plain"
    before = await metric_values(setup.relay)
    master = await http_get(setup.url("plain"))
    media = await http_get(setup.relay + m3u8.loads(master.text).playlists[1].uri)
    segment_uri = m3u8.loads(media.text).segments[-1].uri
    segments = [await http_get(setup.relay + segment_uri) for _ in range(2)]
    assert {s.status_code for s in segments} == {200}
    after = await metric_values(setup.relay)

    def added(name: str, **labels: str) -> float:
        sample = (name, frozenset({"stream": key, **labels}.items()))
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    # the segment: fetched upstream once, a miss for the first viewer and a hit for the second
    assert added("slipstream_relay_upstream_fetches_total", kind="segment") == 1
    assert added("slipstream_relay_cache_total", kind="segment", result="miss") == 1
    assert added("slipstream_relay_cache_total", kind="segment", result="hit") == 1
    # every byte sent to the viewer, playlists and both copies of the segment
    sent = len(master.content) + len(media.content) + sum(len(s.content) for s in segments)
    assert added("slipstream_relay_bytes_out_total") == sent


async def test_relay_replicas_share_one_upstream_fetch_through_redis(
        setup: Setup, nats_url: str, redis_url: str, serve: Callable[[Any], str]) -> None:
    """Two relays on one Redis: viewers on both cost one upstream request per segment."""
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(setup.settings.data_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": setup.demo.removeprefix("http://"),
                                  "SLIPSTREAM_REDIS_URL": redis_url})
    a = serve(create_app(settings, [nats_url]))
    b = serve(create_app(settings, [nats_url]))
    url = setup.url("plain")
    master = m3u8.loads((await http_get(url.replace(setup.relay, a))).text)
    media = m3u8.loads((await http_get(a + master.playlists[1].uri)).text)
    setup.origin.hits.clear()
    async with httpx.AsyncClient(timeout=30) as http:
        got = await asyncio.gather(*(http.get(base + s.uri) for s in media.segments[-2:]
                                     for base in (a, b) for _ in range(10)))
    assert {r.status_code for r in got} == {200}
    seg_hits = {p: n for p, n in setup.origin.hits.items() if p.endswith(".ts")}
    assert len(seg_hits) == 2
    assert set(seg_hits.values()) == {1}


async def test_public_segments_redirect_and_nothing_upstream_leaks_into_headers(
        nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> None:
    """Redirect mode for public segments (when enabled); upstream Set-Cookie never reaches the viewer;
    a slow upstream is a 504; the web UI's origin passes CORS."""
    @get("/p.m3u8", media_type="application/vnd.apple.mpegurl", sync_to_thread=False)
    def playlist() -> Response[str]:
        text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXTINF:2,\nslow.ts\n"
        return Response(text, media_type="application/vnd.apple.mpegurl",
                        cookies=[Cookie(key="upstream", value="secret")])

    @get("/a.ts", media_type="video/mp2t", sync_to_thread=False)
    def seg() -> bytes:
        return b"\x47" * 188

    @get("/slow.ts", media_type="video/mp2t")
    async def slow() -> bytes:
        await asyncio.sleep(5)
        return b""

    upstream = serve(Litestar([playlist, seg, slow], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": upstream.removeprefix("http://"),
                                  "SLIPSTREAM_RELAY_REDIRECT_PUBLIC_SEGMENTS": "true"})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "pub"), encode(record(
        "pub", f"{upstream}/p.m3u8", public_segments=True)))
    await kv.put(subjects.stream_key(SESSION, "priv"), encode(record(
        "priv", f"{upstream}/p.m3u8", headers={"Referer": f"{upstream}/"})))
    app = create_app(settings, [nats_url])
    app.state.relay.upstream.timeout = 1.0
    relay = serve(app)
    signer = Signer(load_secret(None, settings.data_path))
    async with httpx.AsyncClient(timeout=20) as http:
        pub = await http.get(signer.master_url(relay, SESSION, "pub", 600))
        assert "set-cookie" not in pub.headers
        seg_uri = m3u8.loads(pub.text).segments[0].uri
        moved = await http.get(relay + seg_uri)
        assert moved.status_code == 302
        assert moved.headers["location"] == f"{upstream}/a.ts"
        priv = m3u8.loads((await http.get(signer.master_url(relay, SESSION, "priv", 600))).text)
        proxied = await http.get(relay + priv.segments[0].uri)
        assert proxied.status_code == 200
        assert proxied.content == b"\x47" * 188
        timed_out = await http.get(relay + priv.segments[1].uri)
        assert timed_out.status_code == 504
        preflight = await http.options(relay + priv.segments[0].uri, headers={
            "Origin": settings.gateway_url, "Access-Control-Request-Method": "GET"})
        assert preflight.headers["access-control-allow-origin"] == settings.gateway_url
        other = await http.options(relay + priv.segments[0].uri, headers={
            "Origin": "https://evil.test", "Access-Control-Request-Method": "GET"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.test"
