"""Hostile upstream playlists through the relay, on a real nats-server and a real HTTP origin:
each is refused with a typed 502 that says why, the relay learns nothing from it (no link
minted, nothing cached), and it keeps answering other requests."""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
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
            yield b"#EXTM3U\n"
            while True:
                if name == "slow-drip":
                    await asyncio.sleep(1.0)
                    yield b"#"
                else:
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
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            if (await http.get(f"{base}/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
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
