"""The WebSocket feed on a real nats-server: snapshot, deltas in revision order, hardening."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import InvalidStatus

from services.gateway.app import create_app
from services.gateway.feed import QUEUE, Hub
from shared import subjects, topology
from shared.codec import encode
from shared.sessions import Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord

NOW = datetime.now(UTC).replace(microsecond=0)
RACE = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco GP",
               kind=SessionKind.RACE, name="Race", start=NOW)


def record(stream_id: str, health: Health = Health.OK, title: str = "feed") -> StreamRecord:
    return StreamRecord(id=stream_id, session=RACE.key, source_id=stream_id, title=title,
                        upstream_url="https://cdn.secret.test/m.m3u8?token=TOPSECRET",
                        resolved_at=NOW, health=health)


@pytest.fixture
async def gateway(nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> str:
    js = nc.jetstream()
    await (await topology.sessions_kv(js)).put(RACE.key, encode(Live(session=RACE, at=NOW)))
    await (await topology.streams_kv(js)).put(subjects.stream_key(RACE.key, "a"), encode(record("a")))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    base = serve(create_app(settings, [nats_url]))
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(100):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
    return base.replace("http://", "ws://")


async def test_snapshot_then_changes_in_revision_order(gateway: str, nc: Client) -> None:
    """A client gets the snapshot, then each KV change; revisions only go up; no secrets."""
    async with websockets.connect(f"{gateway}/ws") as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert [s["id"] for s in snapshot["streams"]] == ["a"]
        assert snapshot["sessions"][0]["phase"] == "live"
        kv = await topology.streams_kv(nc.jetstream())
        await kv.put(subjects.stream_key(RACE.key, "b"), encode(record("b")))
        await kv.put(subjects.stream_key(RACE.key, "a"), encode(record("a", Health.DEGRADED)))
        await kv.delete(subjects.stream_key(RACE.key, "b"))
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [m["type"] for m in got] == ["stream", "stream", "stream_removed"]
    assert got[0]["stream"]["id"] == "b"
    assert got[1]["stream"]["health"] == "degraded"
    assert got[2] == {"type": "stream_removed", "session": RACE.key, "id": "b",
                      "revision": got[2]["revision"]}
    revisions = [snapshot["revision"], got[0]["stream"]["revision"],
                 got[1]["stream"]["revision"], got[2]["revision"]]
    assert revisions == sorted(set(revisions))
    assert "TOPSECRET" not in json.dumps([snapshot, *got])


async def test_a_bad_origin_is_refused_before_accept(gateway: str) -> None:
    """A browser page from another origin gets HTTP 403 at the handshake."""
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"{gateway}/ws", origin="https://evil.test"):
            pass
    assert info.value.response.status_code == 403
    async with websockets.connect(f"{gateway}/ws", origin="http://127.0.0.1:8080") as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"


def test_the_hub_cuts_off_a_full_queue_and_keeps_serving_the_others() -> None:
    """A client whose bounded queue is full is marked for cut-off; the others still get all."""
    async def run() -> tuple[bool, bool, int]:
        hub = Hub()
        slow, fast = hub.join(None), hub.join(None)
        other = hub.join("2026.other.race")
        assert slow is not None
        assert fast is not None
        assert other is not None
        for i in range(QUEUE + 10):
            hub.publish(RACE.key, {"n": i})
            if fast.queue.full():
                while not fast.queue.empty():
                    fast.queue.get_nowait()
        return slow.overflowed.is_set(), fast.overflowed.is_set(), other.queue.qsize()

    slow_cut, fast_cut, other_got = asyncio.run(run())
    assert slow_cut
    assert not fast_cut
    assert other_got == 0  # filtered to another session
