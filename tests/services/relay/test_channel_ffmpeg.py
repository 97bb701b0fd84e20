"""The whole promise of a channel, with real processes: two demo origins of one session (one
clock-driven broadcast), the relay, a real nats-server, and Debian's ffmpeg reading the
session's channel for 60 s while the origin on air is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from services.demo.media import MEDIA_DIR
from shared import subjects, topology
from shared.channels import ChannelSwitch, load_channel_keys
from shared.codec import decode, encode
from shared.streams import Health, StreamRecord
from tests.conftest import free_ports
from tests.procs import ROOT, Proc, base_env, module, status, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
SESSION = "2026.demo.race"
WATCH = 60.0
KILL_AT = 20.0
TARGET = 2.0
_OPENING = re.compile(r"Opening '([^']+\.(?:main|backup)/m/[^']+\.ts)' for reading")


class Running:
    def __init__(self, tmp: Path, nats_url: str) -> None:
        self.data = tmp
        self.ports = dict(zip(("main", "backup", "relay"), free_ports(3), strict=True))
        self.procs: dict[str, Proc] = {}
        self.nats_url = nats_url

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(self.data, SLIPSTREAM_NATS_URL=self.nats_url, SLIPSTREAM_LOG_FORMAT="json",
                        **extra)

    def start(self) -> None:
        for name in ("main", "backup"):
            self.procs[name] = Proc(module("services.demo"),
                                    self.env(SLIPSTREAM_DEMO_PORT=str(self.ports[name])))
        for name in ("main", "backup"):
            self.procs[name].wait_for("demo origin ready", 120)
        allow = ",".join(f"127.0.0.1:{self.ports[n]}" for n in ("main", "backup"))
        self.procs["relay"] = Proc(module("services.relay"), self.env(
            SLIPSTREAM_RELAY_PORT=str(self.ports["relay"]), SLIPSTREAM_EGRESS_ALLOW=allow))
        try:
            wait_until(lambda: status(f"{self.url('relay')}/readyz") == 200, 120, "relay ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.procs['relay'].output[-3000:]}") from None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.kill_tree()


@pytest.fixture
async def running(tmp_path: Path, nats_url: str, nc: Client) -> AsyncIterator[Running]:
    system = Running(tmp_path, nats_url)
    kv = await topology.streams_kv(nc.jetstream())
    for name, priority in (("main", 20), ("backup", 10)):
        await kv.put(subjects.stream_key(SESSION, name), encode(StreamRecord(
            id=name, session=SESSION, source_id=name, upstream_url=f"{system.url(name)}/live/master.m3u8",
            resolved_at=datetime.now(UTC), health=Health.OK, priority=priority)))
    try:
        await asyncio.to_thread(system.start)
        yield system
    finally:
        system.stop()


class Ffmpeg:
    """ffmpeg decoding a URL to nothing, its log and its progress collected as they come."""

    def __init__(self, url: str) -> None:
        self.popen = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "repeat+level+verbose",
             "-i", url, "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-",
             "-progress", "pipe:1", "-stats_period", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.log: list[str] = []
        #: (wall clock, frames decoded so far)
        self.frames: list[tuple[float, int]] = []
        self._threads = [threading.Thread(target=self._read_log, daemon=True),
                         threading.Thread(target=self._read_progress, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_log(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line.rstrip("\n"))

    def _read_progress(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("frame="):
                self.frames.append((time.monotonic(), int(line.split("=", 1)[1])))

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGINT)  # ffmpeg's "q": finish cleanly
        code = self.popen.wait(30)
        for thread in self._threads:
            thread.join(5)
        return code


def _file_index() -> dict[str, tuple[str, int]]:
    """The demo's looping files by content hash: which file (rendition, number) a segment is."""
    found = {}
    for rendition in ("360p", "180p"):
        i = 0
        while (MEDIA_DIR / rendition / f"{i}.ts").exists():
            body = (MEDIA_DIR / rendition / f"{i}.ts").read_bytes()
            found[hashlib.sha256(body).hexdigest()] = (rendition, i)
            i += 1
    return found


async def test_ffmpeg_keeps_playing_a_channel_while_the_origin_on_air_is_killed(
        running: Running, nc: Client) -> None:
    """60 s of ffmpeg on the session channel; the origin on air is killed at 20 s. ffmpeg keeps
    receiving media (at most one 2 s segment of the broadcast missing, no decode error) and
    exactly one switch (reason "dead") follows the start."""
    events: list[ChannelSwitch] = []

    async def handle(msg: Any) -> None:
        events.append(decode(msg.data, ChannelSwitch))

    await nc.subscribe(subjects.channel_switched(SESSION), cb=handle)
    url = load_channel_keys(None, running.data).master_url(running.url("relay"), SESSION)
    ffmpeg = Ffmpeg(url)
    started = time.monotonic()
    try:
        await asyncio.sleep(KILL_AT)
        running.procs["main"].kill_tree()
        killed = time.monotonic()
        await asyncio.sleep(WATCH - KILL_AT)
    finally:
        code = await asyncio.to_thread(ffmpeg.stop)
    watched = time.monotonic() - started
    log = "\n".join(ffmpeg.log)
    assert code in (0, 255), log[-3000:]  # 255: stopped by the signal, cleanly

    # No decode (or any other) error. The null muxer's complaint about equal audio timestamps
    # is the demo's 16 s loop wrapping (it shows reading a plain stream too), not decoding.
    errors = [line for line in ffmpeg.log if ("[error]" in line or "[fatal]" in line)
              and not ("[null @" in line and "non monotonically increasing dts" in line)]
    assert errors == [], "\n".join(errors[:20])
    assert "expired from playlist" not in log  # ffmpeg never skipped segments ahead

    # Which broadcast segment each segment ffmpeg opened was, by content.
    opened = list(dict.fromkeys(_OPENING.findall(log)))  # ffmpeg opens its first ones twice
    assert any(".main/" in u for u in opened), opened
    assert any(".backup/" in u for u in opened), opened
    index = _file_index()
    loop = len(index) // 2
    async with httpx.AsyncClient(timeout=10) as http:  # from the relay's cache: no origin asked
        bodies = [await http.get(u) for u in opened]
    # ffmpeg probes the other slot's first segment too; it then reads slot 0 (360p) only.
    known = [index.get(hashlib.sha256(b.content).hexdigest()) if b.status_code == 200 else None
             for b in bodies]
    files = [k[1] if k else None for k in known if k is None or k[0] == "360p"]
    steps = [(b - a) % loop for a, b in itertools.pairwise(files)
             if a is not None and b is not None]
    missing = sum(s - 1 for s in steps if s > 1) + files.count(None)
    repeated = sum(1 for s in steps if s == 0)
    which = [("M" if ".main/" in u else "B") + (str(k[1]) if k else "?")
             for u, k in zip(opened, known, strict=True) if k is None or k[0] == "360p"]
    assert missing <= 1, " ".join(which)
    assert repeated <= 1, " ".join(which)

    # Media kept coming: frames decoded cover the time watched, less at most one target duration.
    frames = ffmpeg.frames[-1][1]
    assert frames / 25 >= watched - TARGET, (frames, watched)
    after = [(t, n) for t, n in ffmpeg.frames if t >= killed]
    gap = max((b[0] - a[0] for a, b in itertools.pairwise(after) if b[1] > a[1]),
              default=0.0)
    print(f"channel under ffmpeg: {len(opened)} segments, {missing} missing, {repeated} repeated,"
          f" {frames / 25:.1f} s decoded in {watched:.1f} s, longest wait for a frame after the"
          f" kill {gap:.1f} s")

    await asyncio.sleep(0.5)
    assert [(e.from_stream, e.to_stream, e.reason) for e in events] == \
        [(None, "main", "start"), ("main", "backup", "dead")], events
    assert "playlist failed" in events[1].detail or "extractor" in events[1].detail
