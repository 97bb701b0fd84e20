"""The whole system against the gallery of hard pages: one ``slipstream up`` with the gallery
on and every gallery page as a source (``extractor = "auto"``), one live session; per pattern,
its stream turns healthy on the gateway within a bound and Debian's ffprobe, with default
options, decodes video from the relayed master playlist.

These pin what round two promises (DESIGN.md, "Round two"): candidates chosen by being live,
the full request identity carried from page to relay, playlists known by content, cloaked
segments cleaned, expiring tokens re-resolved. A failure message quotes the extractor's and the
relay's log for that source.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import m3u8
import nats
import pytest

from services.demo.gallery import PATTERNS
from services.demo.gallery.routes import EDGE_TTL, XHR_TOKEN_TTL
from shared import topology
from shared.codec import decode
from shared.streams import StreamRecord
from tests.conftest import free_ports
from tests.procs import Proc, base_env, module
from tests.system import go_live

pytestmark = [pytest.mark.gallery, pytest.mark.slow, pytest.mark.timeout(420)]

SESSION = "2099.gallery.race"
#: Seconds from the session going live by which every pattern's stream must be healthy.
HEALTHY_WITHIN = 150.0
FFPROBE_TIMEOUT = 60


@dataclass
class Up:
    proc: Proc
    ports: dict[str, int]
    nats_url: str
    data: Path
    live_at: float
    #: When each stream was first seen healthy (monotonic clock).
    first_ok: dict[str, float] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def streams(self) -> dict[str, dict[str, Any]]:
        try:
            reply = httpx.get(f"{self.gateway}/api/streams", params={"session": SESSION}, timeout=5)
        except httpx.HTTPError:
            return {}
        return {v["id"]: v for v in reply.json()} if reply.status_code == 200 else {}

    def record(self, stream_id: str) -> StreamRecord | None:
        async def get() -> StreamRecord | None:
            nc = await nats.connect(self.nats_url, connect_timeout=2)
            try:
                kv = await topology.streams_kv(nc.jetstream())
                try:
                    entry = await kv.get(f"{SESSION}.{stream_id}")
                except Exception:  # noqa: BLE001 - no such key: nothing recorded
                    return None
                return decode(entry.value, StreamRecord) if entry.value else None
            finally:
                await nc.close()
        return asyncio.run(get())

    def why(self, stream_id: str) -> str:
        """What the system knows of a stream: its private record, the extractor's and relay's logs."""
        record = self.record(stream_id)
        said = (f"record: health={record.health.value} extractor={record.extractor!r} "
                f"failures={record.failures} detail={record.health_detail!r}"
                if record else "no record in the KV")
        for service in ("extractor", "relay"):
            log = self.data / "logs" / f"{service}.log"
            lines = [line for line in (log.read_text().splitlines() if log.exists() else [])
                     if stream_id in line]
            said += f"\n{service} log:\n" + "\n".join(line[:600] for line in lines[-6:])
        return said


def config(ports: dict[str, int]) -> str:
    demo = f"http://127.0.0.1:{ports['demo']}"
    sources = "".join(
        f'[[sources]]\nid = "gallery-{p.id}"\nname = "Gallery: {p.id}"\n'
        f'url = "{demo}{p.path}"\nkinds = ["race"]\nextractor = "auto"\n\n' for p in PATTERNS)
    # The gallery plays two sites on one server: 127.0.0.1 and localhost (cross-site embeds,
    # CDNs and redirects), so the extractor and relay may reach both.
    return (f'[demo]\ngallery = true\n\n[extractor]\nprobe_interval = 5\n\n'
            f'[egress]\nallow = ["localhost:{ports["demo"]}"]\n\n{sources}')


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("gallery")
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    path = tmp / "slipstream.toml"
    path.write_text(config(ports))
    env = base_env(tmp / "data", SLIPSTREAM_CONFIG=str(path),
                   **{f"SLIPSTREAM_{n.upper()}_PORT": str(p) for n, p in ports.items()})
    proc = Proc([*module("services.cli"), "up"], env)
    try:
        proc.wait_for("Slipstream is ready", timeout=120)
        runtime = json.loads((tmp / "data" / "runtime.json").read_text())
        go_live([runtime["nats_url"]], SESSION)
        yield Up(proc, ports, runtime["nats_url"], tmp / "data", time.monotonic())
    finally:
        if proc.popen.poll() is None:
            proc.stop(signal.SIGTERM, timeout=60)


def ffprobe(url: str, why: Callable[[], str]) -> dict[str, Any]:
    """What Debian's ffprobe, with its default options, finds in ``url``."""
    binary = shutil.which("ffprobe")
    assert binary, "Debian's ffmpeg (ffprobe) is missing: scripts/bootstrap installs it"
    try:
        done = subprocess.run([binary, "-v", "error", "-show_entries",
                               "stream=codec_type,codec_name,width,height", "-of", "json", url],
                              capture_output=True, text=True, timeout=FFPROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"ffprobe found no stream within {FFPROBE_TIMEOUT} s: {err or ''}\n{why()}")
    assert done.returncode == 0, f"ffprobe failed ({done.returncode}):\n{done.stderr[-3000:]}\n{why()}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("pattern", [p.id for p in PATTERNS])
def test_gallery_stream_is_healthy_live_and_plays_in_ffprobe(up: Up, pattern: str) -> None:
    """The pattern's stream is healthy within the bound, its relayed playlist is live (not the
    decoy VOD) and ffprobe decodes an H.264 video stream from the relayed master playlist."""
    plays_through_the_relay(up, f"gallery-{pattern}", up.live_at + HEALTHY_WITHIN)


def plays_through_the_relay(up: Up, stream_id: str, healthy_by: float) -> None:
    """The stream is healthy by ``healthy_by`` (monotonic), live, and ffprobe decodes it."""
    view: dict[str, Any] | None = None
    while time.monotonic() < healthy_by:
        view = up.streams().get(stream_id)
        if view is not None and view["health"] == "ok":
            up.first_ok.setdefault(stream_id, time.monotonic())
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{stream_id} not healthy in time (gateway: {view})\n{up.why(stream_id)}")

    url = view["playback_url"]
    with httpx.Client(timeout=15) as http:
        master = http.get(url)
        assert master.status_code == 200, f"{master.status_code} {master.text[:300]}\n{up.why(stream_id)}"
        parsed = m3u8.loads(master.text)
        media_url = urljoin(url, parsed.playlists[0].uri) if parsed.is_variant else url
        media = http.get(media_url)
        assert media.status_code == 200, f"{media.status_code} {media.text[:300]}"
        relayed = m3u8.loads(media.text)
        assert relayed.segments, f"the relayed variant is not a media playlist:\n{media.text}"
        assert not relayed.is_endlist, f"the relayed stream is a VOD:\n{media.text}"

    streams = ffprobe(url, lambda: up.why(stream_id))["streams"]
    video = [s for s in streams if s.get("codec_type") == "video"]
    assert video, f"no video stream decoded: {streams}\n{up.why(stream_id)}"
    assert video[0]["codec_name"] == "h264"
    assert video[0]["width"] > 0


@pytest.mark.parametrize(("pattern", "ttl"), [("xhr-token", XHR_TOKEN_TTL), ("redirect-cdn", EDGE_TTL)])
def test_expiring_stream_keeps_playing_after_its_first_token_expired(up: Up, pattern: str,
                                                                     ttl: int) -> None:
    """Past the lifetime of the token it was first resolved with, the stream is still healthy
    and plays: it was resolved again (a new token) before or when the old one was refused."""
    stream_id = f"gallery-{pattern}"
    if stream_id not in up.first_ok:
        pytest.fail(f"{stream_id} never turned healthy\n{up.why(stream_id)}")
    # The first token was minted before the stream was first seen healthy.
    time.sleep(max(0.0, up.first_ok[stream_id] + ttl + 5 - time.monotonic()))
    plays_through_the_relay(up, stream_id, time.monotonic() + 30)
