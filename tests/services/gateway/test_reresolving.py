"""Streams lost behind the system's back (a record purged, the bucket's stream purged): the
gateway shows them as being re-resolved, with no playback URL, until they are back or the
window passes; a real removal (a DEL, as the extractor does) stays a removal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import ConnectionClosed

from services.gateway.app import create_app
from services.gateway.views import RERESOLVING
from shared import subjects, topology
from shared.codec import encode
from shared.feed import CLOSE_RELOADED
from shared.sessions import Live
from shared.settings import load_settings
from tests.conftest import until_ready
from tests.services.gateway.test_feed import NOW, RACE, record

pytestmark = pytest.mark.timeout(60)
WINDOW = 12.0


@pytest.fixture
async def gateway(nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> str:
    js = nc.jetstream()
    await (await topology.sessions_kv(js)).put(RACE.key, encode(Live(session=RACE, at=NOW)))
    streams = await topology.streams_kv(js)
    for sid in "abc":
        await streams.put(subjects.stream_key(RACE.key, sid), encode(record(sid)))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_GATEWAY_RERESOLVE_WINDOW": str(WINDOW)})
    base = serve(create_app(settings, [nats_url]))
    await until_ready(base)
    return base


async def _next(ws: Any, kind: str, within: float = 10) -> dict[str, Any]:
    """The next feed message of ``kind`` (heartbeats skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message  # type: ignore[no-any-return]


def _views(gateway: str) -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in httpx.get(f"{gateway}/api/streams", timeout=5).json()}


async def test_lost_streams_show_as_re_resolving_without_a_url(gateway: str, nc: Client) -> None:
    js = nc.jetstream()
    kv = await topology.streams_kv(js)
    ws_url = gateway.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url) as ws:
        snapshot = json.loads(await ws.recv())
        assert {v["id"] for v in snapshot["streams"]} == {"a", "b", "c"}
        await kv.purge(subjects.stream_key(RACE.key, "a"))  # behind the system's back
        lost = (await _next(ws, "stream"))["stream"]
        assert (lost["id"], lost["health"], lost["health_detail"], lost["playback_url"]) == (
            "a", "resolving", RERESOLVING, "")
        assert _views(gateway)["a"]["playback_url"] == ""
        await kv.delete(subjects.stream_key(RACE.key, "b"))  # a real removal stays one
        assert (await _next(ws, "stream_removed"))["id"] == "b"
        await kv.put(subjects.stream_key(RACE.key, "a"), encode(record("a")))
        back = (await _next(ws, "stream"))["stream"]
        assert (back["id"], back["health"]) == ("a", "ok")
        assert back["playback_url"].startswith("http")
        assert back["revision"] > lost["revision"]

        # The bucket's stream purged: no watcher hears it, the gateway notices (fewer messages
        # than live keys), forgets every URL and asks clients to reconnect.
        await js.purge_stream(topology.STREAMS_BUCKET_STREAM)
        with pytest.raises(ConnectionClosed):
            await _next(ws, "never", within=15)
        assert ws.close_code == CLOSE_RELOADED
    views = _views(gateway)
    assert {k: (v["health"], v["playback_url"]) for k, v in views.items()} == {
        "a": ("resolving", ""), "c": ("resolving", "")}
    async with websockets.connect(ws_url) as ws:
        snapshot = json.loads(await ws.recv())
        assert {(v["id"], v["playback_url"]) for v in snapshot["streams"]} == {("a", ""), ("c", "")}
        await kv.put(subjects.stream_key(RACE.key, "c"), encode(record("c")))
        assert (await _next(ws, "stream"))["stream"]["health"] == "ok"
        # "a" never comes back: after the window it is taken as gone.
        gone = await _next(ws, "stream_removed", within=WINDOW + 10)
        assert gone == {"type": "stream_removed", "session": RACE.key, "id": "a", "revision": 0}
    assert set(_views(gateway)) == {"c"}
