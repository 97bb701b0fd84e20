"""The relay against upstreams as real sites serve them, on loopback: segments cloaked as
images, playlists named anything, fMP4, encryption, refusals. Every relay URL carries the
extension of what it is, cloaks are cleaned, and a refusal asks the extractor to re-resolve."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from litestar import Litestar, Response, get
from litestar.params import FromPath
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.relay.app import create_app
from shared import subjects, topology
from shared.codec import decode, encode
from shared.control import ReresolveOutcome, ReresolveReply, ReresolveRequest
from shared.relay_urls import Signer, load_secret
from shared.settings import load_settings
from tests.services.relay.test_relay import SESSION, http_get, record
from tests.services.relay.test_sniff import PNG_1X1

pytestmark = pytest.mark.timeout(120)

MEDIA = Path(__file__).resolve().parents[3] / "services" / "demo" / "media" / "180p"
TS = [(MEDIA / f"{i}.ts").read_bytes() for i in range(4)]
KEY = bytes(range(16))
PLAYLIST = "application/vnd.apple.mpegurl"
#: A packed-audio segment: an ID3 tag (as HLS requires) and two ADTS frames.
AAC = b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)) * 60


def vod(segments: list[str], head: str = "") -> str:
    lines = "".join(f"#EXTINF:2.000,\n{s}\n" for s in segments)
    return (f"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n"
            f"#EXT-X-MEDIA-SEQUENCE:0\n{head}{lines}#EXT-X-ENDLIST\n")


class Files:
    """An upstream that serves whatever is in ``files``: path -> (status, type, body)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str, bytes]] = {}
        self.hits: list[str] = []

    def app(self) -> Litestar:
        @get("/{path:path}", sync_to_thread=False)
        def any_file(path: FromPath[str]) -> Response[bytes]:
            self.hits.append(path)
            status, content_type, body = self.files.get(path, (404, "text/plain", b"no"))
            return Response(body, status_code=status, media_type=content_type)

        return Litestar([any_file], openapi_config=None, logging_config=None)

    def playlist(self, path: str, text: str) -> None:
        self.files[path] = (200, "text/css", text.encode())  # the type says nothing either


def fmp4(folder: Path) -> tuple[bytes, list[bytes]]:
    """A small fMP4 HLS rendition made by ffmpeg: its init section and segments."""
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10",
                    "-t", "4", "-c:v", "libx264", "-g", "10", "-f", "hls", "-hls_time", "2",
                    "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                    "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
                    str(folder / "s%d.m4s"), str(folder / "out.m3u8")],
                   check=True, timeout=60, capture_output=True)
    return (folder / "init.mp4").read_bytes(), [p.read_bytes() for p in sorted(folder.glob("s*.m4s"))]


class Cloaked:
    def __init__(self, relay: str, upstream: Files, signer: Signer, base: str, app: Any) -> None:
        self.relay = relay
        self.upstream = upstream
        self.signer = signer
        self.base = base
        self.app = app

    def url(self, stream_id: str) -> str:
        return self.signer.master_url(self.relay, SESSION, stream_id, 600)

    async def media(self, stream_id: str) -> m3u8.M3U8:
        got = await http_get(self.url(stream_id))
        assert got.status_code == 200, got.text
        return m3u8.loads(got.text)


@pytest.fixture
async def cloaked(nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> Cloaked:
    """An upstream with every trick, its streams in the KV, and the relay in front of it."""
    upstream = Files()
    base = serve(upstream.app())
    f = upstream.files
    # a master and a variant without extensions; segments named .png, a 1x1 PNG in front
    upstream.playlist("/c/master", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,"
                      "RESOLUTION=320x180,CODECS=\"avc1.42c00d,mp4a.40.2\"\nv/list\n")
    upstream.playlist("/c/v/list", vod([f"seg/{i}.png" for i in range(4)]))
    for i, ts in enumerate(TS):
        f[f"/c/v/seg/{i}.png"] = (200, "image/png", PNG_1X1 + ts)
    # encrypted (AES-128): the bytes must reach the player exactly as the upstream sent them
    upstream.playlist("/e/list", vod(["enc.png"], head='#EXT-X-KEY:METHOD=AES-128,URI="k"\n'))
    f["/e/enc.png"] = (200, "image/png", PNG_1X1 + TS[0])
    f["/e/k"] = (200, "image/png", KEY)
    # a stream whose upstream refuses the relay
    upstream.playlist("/r/list", vod(["x.png", "y.png"]))
    f["/r/x.png"] = f["/r/y.png"] = (403, "text/plain", b"forbidden")
    # packed audio named .png: the first sniffed segment teaches the playlist's other names
    upstream.playlist("/a/list", vod(["a0.png"]))
    f["/a/a0.png"] = f["/a/a1.png"] = (200, "image/png", AAC)
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": base.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    for stream_id, path in (("cloaked", "/c/master"), ("enc", "/e/list"), ("refused", "/r/list"),
                            ("audio", "/a/list"), ("fmp4", "/f/list")):
        await kv.put(subjects.stream_key(SESSION, stream_id),
                     encode(record(stream_id, f"{base}{path}")))
    app = create_app(settings, [nats_url])
    relay = serve(app)
    return Cloaked(relay, upstream, Signer(load_secret(None, settings.data_path)), base, app)


async def test_a_png_named_cloaked_segment_is_served_as_clean_ts(cloaked: Cloaked) -> None:
    """The extensionless variant is .m3u8; .png segments are .ts, video/mp2t, and start with
    the TS itself: sync bytes at 0 and 188, the PNG gone, the rest byte for byte."""
    master = await cloaked.media("cloaked")
    variant = master.playlists[0].uri
    assert variant.endswith(".m3u8")
    got = await http_get(cloaked.relay + variant)
    assert got.headers["content-type"].startswith(PLAYLIST)
    media = m3u8.loads(got.text)
    assert [s.uri.rsplit(".", 1)[1] for s in media.segments] == ["ts"] * 4
    segment = await http_get(cloaked.relay + media.segments[0].uri)
    assert segment.status_code == 200
    assert segment.headers["content-type"] == "video/mp2t"
    assert segment.content[0] == segment.content[188] == 0x47
    assert segment.content == TS[0]


async def test_ranges_and_head_of_a_cleaned_segment_follow_the_cleaned_body(cloaked: Cloaked) -> None:
    """HEAD gives the cleaned length and a range slices the cleaned body (whether the segment
    was fetched before or the range is the first request)."""
    master = await cloaked.media("cloaked")
    media = m3u8.loads((await http_get(cloaked.relay + master.playlists[0].uri)).text)
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.get(cloaked.relay + media.segments[1].uri, headers={"Range": "bytes=0-375"})
        head = await http.head(cloaked.relay + media.segments[1].uri)
        whole = await http.get(cloaked.relay + media.segments[1].uri)
    assert first.status_code == 206
    assert first.content == TS[1][:376]
    assert first.headers["content-range"] == f"bytes 0-375/{len(TS[1])}"
    assert int(head.headers["content-length"]) == len(TS[1])
    assert whole.content == TS[1]


async def test_an_encrypted_segment_passes_byte_identical(cloaked: Cloaked) -> None:
    """Under an AES-128 key nothing is sniffed or cut: the upstream bytes, PNG-like start and
    all, reach the player; the key is a .key, application/octet-stream."""
    media = await cloaked.media("enc")
    assert media.keys[0] is not None
    key_uri = media.keys[0].uri
    assert key_uri.endswith(".key")
    assert "/r/" in media.segments[0].uri
    assert media.segments[0].uri.endswith(".ts")
    key = await http_get(cloaked.relay + key_uri)
    assert (key.content, key.headers["content-type"]) == (KEY, "application/octet-stream")
    segment = await http_get(cloaked.relay + media.segments[0].uri)
    assert segment.content == PNG_1X1 + TS[0]
    assert segment.headers["content-type"] == "video/mp2t"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by make test")
async def test_an_fmp4_stream_gets_mp4_and_m4s(cloaked: Cloaked, tmp_path: Path) -> None:
    """An init section and fragments named .png: the map is .mp4 (video/mp4), segments .m4s
    (video/iso.segment), both byte for byte."""
    init, segments = fmp4(tmp_path)
    f = cloaked.upstream.files
    f["/f/init.png"] = (200, "image/png", init)
    for i, body in enumerate(segments):
        f[f"/f/{i}.png"] = (200, "image/png", body)
    cloaked.upstream.playlist("/f/list", vod([f"{i}.png" for i in range(len(segments))],
                                             head='#EXT-X-MAP:URI="init.png"\n'))
    media = await cloaked.media("fmp4")
    map_uri = media.segment_map[0].uri
    assert map_uri.endswith(".mp4")
    assert [s.uri.rsplit(".", 1)[1] for s in media.segments] == ["m4s"] * len(segments)
    got_init = await http_get(cloaked.relay + map_uri)
    assert (got_init.content, got_init.headers["content-type"]) == (init, "video/mp4")
    got = await http_get(cloaked.relay + media.segments[0].uri)
    assert (got.content, got.headers["content-type"]) == (segments[0], "video/iso.segment")


async def test_packed_audio_named_png_is_served_as_aac(cloaked: Cloaked) -> None:
    """A .png-named packed-audio segment is audio/aac; once one is sniffed, segments new to
    the playlist are named .aac (those already named keep their URL: refs are stable)."""
    media = await cloaked.media("audio")
    first = media.segments[0].uri
    got = await http_get(cloaked.relay + first)
    assert (got.content, got.headers["content-type"]) == (AAC, "audio/aac")
    cloaked.upstream.playlist("/a/list", vod(["a0.png", "a1.png"]))
    await asyncio.sleep(1.1)  # the playlist cache's time to live
    again = await cloaked.media("audio")
    assert again.segments[0].uri.rsplit("/", 2)[1:] == first.rsplit("/", 2)[1:]  # same ref, ext
    assert again.segments[1].uri.endswith(".aac")


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg is installed by make test")
def test_debian_ffprobe_decodes_the_relayed_cloaked_stream(cloaked: Cloaked) -> None:
    """Debian's ffprobe with its default options (extension_picky on) decodes video frames
    from the relayed master of an upstream with an extensionless playlist and .png-cloaked
    TS segments (it refuses the upstream itself)."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
            "-show_entries", "stream=codec_name,width,nb_read_frames", "-of", "csv=p=0"]
    probe = subprocess.run([*args, cloaked.url("cloaked")], capture_output=True, text=True,
                           timeout=90, check=False)
    assert probe.returncode == 0, probe.stderr
    codec, width, frames = probe.stdout.strip().splitlines()[0].split(",")[:3]
    assert (codec, width) == ("h264", "320")
    assert int(frames) >= 150  # four 2 s segments at 25 frames a second, every one decoded
    direct = subprocess.run([*args, f"{cloaked.base}/c/master"], capture_output=True, text=True,
                            timeout=90, check=False)
    assert "not in allowed_segment_extensions" in direct.stderr, direct.stderr


async def test_an_upstream_refusal_asks_the_extractor_to_re_resolve_once(
        cloaked: Cloaked, nc: Client) -> None:
    """403 from a stream's segments, hit by several viewers: one re-resolve request on NATS,
    within a second, naming the stream and the status; the viewers get a 502."""
    asked: list[tuple[float, ReresolveRequest]] = []

    async def extractor(msg: Msg) -> None:
        asked.append((time.monotonic(), decode(msg.data, ReresolveRequest)))
        await msg.respond(encode(ReresolveReply(outcome=ReresolveOutcome.ACCEPTED)))

    sub = await nc.subscribe(subjects.EXTRACTOR_RERESOLVE, queue=subjects.EXTRACTOR_QUEUE,
                             cb=extractor)
    await nc.flush()
    try:
        media = await cloaked.media("refused")
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            got = await asyncio.gather(*(http.get(cloaked.relay + s.uri)
                                         for s in media.segments for _ in range(5)))
        assert {r.status_code for r in got} == {502}
        await asyncio.sleep(1.0)
        assert len(asked) == 1
        at, request = asked[0]
        assert at - started < 1.0
        assert request.stream == subjects.stream_key(SESSION, "refused")
        assert request.status == 403
        # the upstream URL is nowhere in the request
        assert cloaked.base.removeprefix("http://") not in request.reason
    finally:
        await sub.unsubscribe()


async def test_a_refused_playlist_asks_too_and_other_streams_have_their_own_limit(
        cloaked: Cloaked, nc: Client) -> None:
    """A 401 on a playlist asks as well; the per-stream limit does not silence another stream."""
    asked: list[ReresolveRequest] = []

    async def extractor(msg: Msg) -> None:
        asked.append(decode(msg.data, ReresolveRequest))
        await msg.respond(encode(ReresolveReply(outcome=ReresolveOutcome.UNKNOWN)))

    sub = await nc.subscribe(subjects.EXTRACTOR_RERESOLVE, cb=extractor)
    await nc.flush()
    try:
        cloaked.upstream.files["/e/list"] = (401, "text/plain", b"who are you")
        cloaked.upstream.files["/c/master"] = (410, "text/plain", b"gone")
        for _ in range(3):
            assert (await http_get(cloaked.url("enc"))).status_code == 502
            assert (await http_get(cloaked.url("cloaked"))).status_code == 502
        for _ in range(20):
            if len(asked) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert sorted((r.stream.rsplit(".", 1)[1], r.status) for r in asked) == [
            ("cloaked", 410), ("enc", 401)]
    finally:
        await sub.unsubscribe()
