"""The WebSocket feed on a real nats-server: snapshot, deltas in revision order, hardening."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.gateway.app import SEND_BUFFER, create_app
from services.gateway.feed import HEARTBEAT, QUEUE, SEND_STALL, Hub
from shared import subjects, topology
from shared.codec import encode
from shared.feed import CLOSE_TOO_SLOW
from shared.sessions import Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from tests.conftest import until_ready

NOW = datetime.now(UTC).replace(microsecond=0)
RACE = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco GP",
               kind=SessionKind.RACE, name="Race", start=NOW)


def record(stream_id: str, health: Health = Health.OK, title: str = "feed") -> StreamRecord:
    return StreamRecord(id=stream_id, session=RACE.key, source_id=stream_id, title=title,
                        upstream_url="https://cdn.secret.test/m.m3u8?token=TOPSECRET",
                        resolved_at=NOW, health=health)


@pytest.fixture
async def gateway(nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> str:
    js = nc.jetstream()
    await (await topology.sessions_kv(js)).put(RACE.key, encode(Live(session=RACE, at=NOW)))
    await (await topology.streams_kv(js)).put(subjects.stream_key(RACE.key, "a"), encode(record("a")))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    base = serve(create_app(settings, [nats_url]), send_buffer=SEND_BUFFER)
    await until_ready(base)
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


def test_the_hub_cuts_off_a_full_backlog_and_keeps_serving_the_others() -> None:
    """A client whose bounded backlog is full is cut off; the others still get everything."""
    async def run() -> tuple[int | None, int | None, int, int]:
        hub = Hub()
        slow, fast = hub.join(None), hub.join(None)
        other = hub.join("2026.other.race")
        assert slow is not None
        assert fast is not None
        assert other is not None
        got = 0
        for i in range(QUEUE + 10):
            hub.publish(RACE.key, {"n": i})
            got += len(fast.backlog)
            fast.backlog.clear()
        return slow.closing, fast.closing, len(other.backlog), got

    slow_cut, fast_cut, other_got, fast_got = asyncio.run(run())
    assert slow_cut == CLOSE_TOO_SLOW
    assert fast_cut is None
    assert fast_got == QUEUE + 10
    assert other_got == 0  # filtered to another session


def test_a_message_goes_straight_to_the_socket_only_while_nothing_waits() -> None:
    """The fan-out writes at once while the socket takes it; once one message has to wait,
    every later one queues behind it (order kept) until the pump has sent the backlog."""
    async def run() -> tuple[list[str], list[str], list[str]]:
        hub = Hub()
        client = hub.join(None)
        assert client is not None
        written: list[str] = []
        full = [False]

        def direct(text: str) -> bool:
            if full[0]:
                return False
            written.append(text)
            return True

        client.direct = direct
        hub.publish(None, {"n": 1})
        full[0] = True
        hub.publish(None, {"n": 2})  # the socket is full: queued
        full[0] = False
        hub.publish(None, {"n": 3})  # the socket could take it, but 2 waits: queued behind it
        queued = list(client.backlog)
        pumped: list[str] = []

        async def send(text: str) -> None:
            pumped.append(text)

        pumping = asyncio.create_task(client.pump(send))
        await asyncio.sleep(0.01)
        hub.publish(None, {"n": 4})  # the backlog is sent: straight to the socket again
        client.cut(CLOSE_TOO_SLOW)
        await asyncio.wait_for(pumping, 1)
        return written, queued, pumped

    written, queued, pumped = asyncio.run(run())
    assert [json.loads(t)["n"] for t in written] == [1, 4]
    assert [json.loads(t)["n"] for t in queued] == [2, 3]
    assert [json.loads(t)["n"] for t in pumped] == [2, 3]


def test_the_tick_cuts_off_a_stalled_send_and_heartbeats_the_idle() -> None:
    async def run() -> tuple[int | None, list[str], bool]:
        hub = Hub()
        stalled, idle = hub.join(None), hub.join(None)
        assert stalled is not None
        assert idle is not None
        never = asyncio.Event()

        async def stuck(_: str) -> None:
            await never.wait()

        stalled.offer("x")
        pumping = asyncio.create_task(stalled.pump(stuck))
        await asyncio.sleep(0.01)
        now = time.monotonic()
        hub.tick(now + max(SEND_STALL, HEARTBEAT) + 1)
        await asyncio.wait_for(pumping, 1)  # the stuck send was cancelled, the pump returned
        return stalled.closing, list(idle.backlog), stalled in hub.clients

    closing, heartbeats, still_there = asyncio.run(run())
    assert closing == CLOSE_TOO_SLOW
    assert not still_there
    assert [json.loads(h)["type"] for h in heartbeats] == ["heartbeat"]


async def _ws_clients(base: str) -> float:
    async with httpx.AsyncClient(base_url=base) as http:
        text = (await http.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("slipstream_gateway_ws_clients "))
    return float(line.split()[1])


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_get_everything(
        gateway: str, nc: Client) -> None:
    """End to end: a stalled client's TCP window closes, its queue fills, the gateway drops it
    (close code 4008 once it reads again) while a reading client receives every change."""
    host, port = gateway.removeprefix("ws://").split(":")
    stalled_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    stalled_sock.connect((host, int(port)))
    changes = 2000
    # max_queue=1: the websockets library stops reading the socket while we do not recv()
    async with websockets.connect(f"{gateway}/ws", sock=stalled_sock, max_queue=1) as stalled, \
            websockets.connect(f"{gateway}/ws") as reader:
        assert json.loads(await reader.recv())["type"] == "snapshot"
        assert await _ws_clients(gateway.replace("ws://", "http://")) == 2

        async def read_all() -> list[dict[str, Any]]:
            got = []
            while len(got) < changes:
                message = json.loads(await reader.recv())
                if message["type"] == "stream":
                    got.append(message)
            return got

        reading = asyncio.create_task(read_all())
        kv = await topology.streams_kv(nc.jetstream())
        for i in range(changes):  # about 1 MB of feed: far more than the buffers hold
            await kv.put(subjects.stream_key(RACE.key, f"s{i % 40}"),
                         encode(record(f"s{i % 40}", title=f"{i:05d} " + os.urandom(200).hex())))

        for _ in range(400):  # the stalled client left the hub while still not reading
            if await _ws_clients(gateway.replace("ws://", "http://")) == 1:
                break
            await asyncio.sleep(0.05)
        assert await _ws_clients(gateway.replace("ws://", "http://")) == 1

        drained: list[int] = []

        async def drain() -> None:
            while True:  # reading again, it gets what was sent, then learns why it was cut off
                message = json.loads(await asyncio.wait_for(stalled.recv(), 10))
                if message["type"] == "stream":
                    drained.append(int(message["stream"]["title"][:5]))

        with pytest.raises(ConnectionClosed) as closed:
            await drain()
        # What reached it before the cut is whole and in order: a write the socket could not
        # take at once was sent later by the client's pump, not lost or sent twice.
        assert drained == list(range(len(drained)))
        assert 0 < len(drained) < changes
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CLOSE_TOO_SLOW
        assert stalled.close_code == CLOSE_TOO_SLOW
        got = await asyncio.wait_for(reading, 120)
        titles = [int(m["stream"]["title"][:5]) for m in got]
        assert titles == list(range(changes))  # every change, in order, to the reader


async def test_with_a_token_the_feed_and_the_api_need_it(
        nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:
    token = "canary-token-0123456789"
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_GATEWAY_TOKEN": token})
    base = serve(create_app(settings, [nats_url]), send_buffer=SEND_BUFFER)
    ws_base = base.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).status_code == 200  # health stays open
        assert (await http.get("/")).status_code == 200  # so does the UI's shell
        for path in ("/api/streams", "/api/live", "/export/live.m3u", "/export/calendar.ics"):
            assert (await http.get(path)).status_code == 401, path
            assert (await http.get(path, params={"token": "wrong-token-0123456789"})).status_code == 401
        assert (await http.get("/api/streams", params={"token": token})).status_code == 200
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/streams", headers=bearer)).status_code == 200
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"{ws_base}/ws"):
            pass
    assert info.value.response.status_code == 403
    async with websockets.connect(f"{ws_base}/ws?token={token}") as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
