"""Hostile upstream playlists through the relay, on a real nats-server and a real HTTP origin:
each is refused with a typed 502 that says why, the relay learns nothing from it (no link
minted, nothing cached), and it keeps answering other requests."""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, get
from litestar.params import FromPath
from litestar.response import Stream
from nats.aio.client import Client

from services.relay.app import create_app
from shared import subjects, topology
from shared.codec import encode
from shared.relay_urls import Signer, load_secret
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from tests.conftest import free_port, until_ready
from tests.procs import Proc, base_env, module, status, wait_until

pytestmark = pytest.mark.timeout(120)
SESSION = "2026.hostile.race"
HLS = "application/vnd.apple.mpegurl"

BODIES: dict[str, bytes] = {
    "html": b"<!doctype html><html><body>not a playlist</body></html>",
    "json": b'{"playlist": "#EXTM3U"}',
    "binary": os.urandom(8192),
    "truncated": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.ts\n#EXTINF:2.0,",
    "keys": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + b"".join(
        b'#EXT-X-KEY:METHOD=AES-128,URI="k%d.key"\n#EXTINF:2,\ns%d.ts\n' % (i, i)
        for i in range(20_000)),
    "million-lines": b"#EXTM3U\n" + b"#\n" * 1_000_000,
    "long-line": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n" + b"a" * (10 * 1024 * 1024),
    "long-line-under-cap": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#X-" + b"a" * (200 * 1024) + b"\n",
}
REASONS = {"html": "no #EXTM3U", "json": "no #EXTM3U", "binary": "no #EXTM3U",
           "truncated": "cut off", "keys": "distinct keys", "million-lines": "lines",
           "long-line": "exceeds 4194304", "long-line-under-cap": "longer than",
           "gzip-bomb": "exceeds 4194304", "endless": "exceeds 4194304",
           "slow-drip": "no complete answer within 3.0 s"}


@functools.cache
def bomb() -> bytes:
    """64 MB of playlist in about 64 KB of gzip."""
    return gzip.compress(b"#EXTM3U\n" + b"\0" * (64 * 1024 * 1024))


@get("/p/{name:str}/index.m3u8", sync_to_thread=False)
def playlist(name: FromPath[str]) -> Response[Any]:
    if name == "gzip-bomb":
        return Response(bomb(), media_type=HLS, headers={"Content-Encoding": "gzip"})
    if name in ("endless", "slow-drip"):
        async def chunks() -> AsyncIterator[bytes]:
            # Endless as far as the relay can tell (1 GiB); each chunk gives the origin's loop a
            # turn, since a send to a peer that hung up may return without waiting on anything.
            yield b"#EXTM3U\n"
            for _ in range(16384):
                if name == "slow-drip":
                    await asyncio.sleep(1.0)
                    yield b"#"
                else:
                    await asyncio.sleep(0)
                    yield b"#" * 65536
        return Stream(chunks(), media_type=HLS)
    return Response(BODIES[name], media_type=HLS)


@pytest.fixture
async def relay(nc: Client, nats_url: str, serve: Callable[..., str],
                tmp_path: Path) -> tuple[str, Signer, Any]:
    origin = serve(Litestar([playlist], openapi_config=None, logging_config=None))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": origin.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    for name in REASONS:
        await kv.put(subjects.stream_key(SESSION, name), encode(StreamRecord(
            id=name, session=SESSION, source_id=name, upstream_url=f"{origin}/p/{name}/index.m3u8",
            resolved_at=datetime.now(UTC), health=Health.OK)))
    app = create_app(settings, [nats_url])
    app.state.relay.upstream.timeout = 3.0
    base = serve(app)
    await until_ready(base)
    return base, Signer(load_secret(None, settings.data_path)), app.state.relay


@pytest.mark.parametrize("name", list(REASONS))
async def test_a_hostile_playlist_is_refused_and_teaches_the_relay_nothing(
        relay: tuple[str, Signer, Any], name: str) -> None:
    base, signer, state = relay
    async with httpx.AsyncClient(timeout=30) as http:
        got = await http.get(signer.master_url(base, SESSION, name, 600))
        assert got.status_code in (502, 504), got.text
        assert REASONS[name] in got.json()["error"], got.json()
        key = subjects.stream_key(SESSION, name)
        assert not state.refs.get(key)  # no link was minted from it
        assert not any(name in url for url in state.upstream._playlists)  # nor anything cached
        assert (await http.get(f"{base}/healthz")).status_code == 200


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.mark.slow
async def test_the_relay_process_memory_stays_bounded_by_its_caps(
        nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:
    """The relay as its own process, every hostile playlist at once, twenty rounds: its peak
    memory grows by a bounded amount, set by the 4 MiB body cap, not by the 64 MB bomb, the
    10 MB line, the million lines or the endless body.

    Only the peak is asserted: resident memory between rounds moves with the allocator (run
    for 80 rounds it rose and fell, 99 to 178 to 161 MiB, before the line count was checked
    ahead of splitting; 60 rounds after it peaked at 143 MiB), so "levels off" is no test."""
    bomb()
    origin = serve(Litestar([playlist], openapi_config=None, logging_config=None))
    names = [n for n in REASONS if n != "slow-drip"]  # a matter of time, not of memory
    kv = await topology.streams_kv(nc.jetstream())
    for name in names:
        await kv.put(subjects.stream_key(SESSION, name), encode(StreamRecord(
            id=name, session=SESSION, source_id=name, upstream_url=f"{origin}/p/{name}/index.m3u8",
            resolved_at=datetime.now(UTC), health=Health.OK)))
    signer = Signer(load_secret(None, tmp_path))
    port = free_port()
    proc = Proc(module("services.relay"), base_env(
        tmp_path, SLIPSTREAM_NATS_URL=nats_url, SLIPSTREAM_RELAY_PORT=str(port),
        SLIPSTREAM_EGRESS_ALLOW=origin.removeprefix("http://")))
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until, lambda: status(f"{base}/readyz") == 200, 45,
                                "relay ready")
        async with httpx.AsyncClient(timeout=60) as http:
            async def hostile_round() -> None:
                got = await asyncio.gather(*(http.get(signer.master_url(base, SESSION, n, 600))
                                             for n in names))
                assert {r.status_code for r in got} <= {502, 504}, [r.text for r in got]

            idle = _memory(proc.popen.pid)["VmRSS"]
            await hostile_round()  # warm: imports, pools, buffers
            warm = _memory(proc.popen.pid)["VmRSS"]
            after = []
            for _ in range(20):
                await hostile_round()
                after.append(_memory(proc.popen.pid)["VmRSS"])
            peak = _memory(proc.popen.pid)["VmHWM"]
            assert (await http.get(f"{base}/healthz")).status_code == 200
    finally:
        proc.stop(signal.SIGTERM)
    mib = 1024 * 1024
    figures = (f"relay RSS idle {idle / mib:.0f} MiB, warm {warm / mib:.0f} MiB, after rounds "
               f"{[round(a / mib) for a in after]} MiB, peak {peak / mib:.0f} MiB")
    print(figures)
    # Before the bounded inflate (httpx inflated the bomb's 64 KB into 64 MB in one step) the
    # peak was 347 MiB, 260 above idle: one uncapped bomb alone is 64 MB of bytes and as much
    # again decoded, over this bound. With the caps, measured alone on 2 December 2026: growth
    # 69-95 MiB over idle (92). Python's own allocations peak at 14-42 MiB a round (tracemalloc,
    # 10 hostile playlists at once); the rest is the allocator keeping freed multi-MiB buffers
    # (a fixed MALLOC_MMAP_THRESHOLD_ did not change it: 81-90 MiB). The bound was 96 MiB when
    # growth measured about 60; it failed beside the other pytest at 131.
    assert peak - idle < 120 * mib, figures
