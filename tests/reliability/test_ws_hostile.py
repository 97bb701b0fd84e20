"""Hostile WebSocket clients against the gateway on a real nats-server: a 20 MB frame, a
compression offer, a burst of 2,000 connections, a peer that stops answering pings. Each gets a
documented outcome, and a well-behaved client keeps receiving changes throughout."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import ConnectionClosed

from services.gateway.app import SEND_BUFFER, create_app
from shared import subjects, topology
from shared.codec import encode
from shared.natsserver import EmbeddedNats
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from tests.conftest import free_port, until_ready
from tests.procs import Proc, base_env, module, status, wait_until

pytestmark = pytest.mark.timeout(120)
SESSION = "2026.monaco.race"


def record(title: str) -> StreamRecord:
    return StreamRecord(id="main", session=SESSION, source_id="main", title=title,
                        upstream_url="https://cdn.example.test/live.m3u8",
                        resolved_at=datetime.now(UTC), health=Health.OK)


@pytest.fixture
def ping(request: pytest.FixtureRequest) -> float:
    """Seconds between pings: short only where the test is about pings (a busy machine may
    hold a healthy client's pong back for a second)."""
    return float(getattr(request, "param", 20.0))


@pytest.fixture
async def gateway(nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path,
                  ping: float) -> str:
    await topology.apply(nc.jetstream())
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)})
    base = serve(create_app(settings, [nats_url]), send_buffer=SEND_BUFFER, ws_ping=ping)
    await until_ready(base)
    return base.replace("http://", "ws://")


async def clients_connected(gateway: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(gateway.replace("ws://", "http://") + "/metrics")).text
    return float(next(x for x in text.splitlines()
                      if x.startswith("slipstream_gateway_ws_clients ")).split()[1])


async def change_reaches(reader: Any, nc: Client, title: str) -> None:
    kv = await topology.streams_kv(nc.jetstream(timeout=30))  # a busy test loop is slow to ack
    await kv.put(subjects.stream_key(SESSION, "main"), encode(record(title)))
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await reader.recv())
            if message["type"] == "stream" and message["stream"]["title"] == title:
                return


async def test_a_20_mb_frame_is_refused_with_1009(gateway: str, nc: Client) -> None:
    async with websockets.connect(f"{gateway}/ws") as reader, \
            websockets.connect(f"{gateway}/ws", max_size=None) as big:
        await reader.recv()
        await big.recv()
        with contextlib.suppress(ConnectionClosed):  # the gateway may close while it is sent
            await big.send("x" * (20 * 1024 * 1024))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(big.recv(), 10)
        assert big.close_code == 1009  # message too big
        await change_reaches(reader, nc, "after a 20 MB frame")


async def test_compression_is_never_negotiated(gateway: str) -> None:
    """No permessage-deflate, so no zlib state per client and no compression bomb to defuse."""
    async with websockets.connect(f"{gateway}/ws", compression="deflate") as ws:
        await ws.recv()
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


@pytest.mark.timeout(180)
async def test_a_burst_of_2000_connections_is_served_and_others_keep_receiving(
        nc: Client, nats_server: EmbeddedNats, tmp_path: Path) -> None:
    """The gateway as its own process (so the 2,000 clients here do not share its CPU time)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    await topology.apply(nc.jetstream())
    port = free_port()
    proc = Proc(module("services.gateway"), base_env(
        tmp_path, SLIPSTREAM_NATS_URL=nats_server.url, SLIPSTREAM_GATEWAY_PORT=str(port)))
    gateway = f"ws://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until, lambda: status(f"http://127.0.0.1:{port}/readyz") == 200,
                                60, "gateway ready")
        async with websockets.connect(f"{gateway}/ws") as reader:
            await reader.recv()

            async def one() -> str:
                async with websockets.connect(f"{gateway}/ws", open_timeout=60) as ws:
                    return str(json.loads(await ws.recv())["type"])

            burst = asyncio.gather(*(one() for _ in range(2000)), return_exceptions=True)
            await change_reaches(reader, nc, "during the burst")
            outcomes = await burst
            assert outcomes.count("snapshot") == 2000, {repr(o) for o in outcomes if o != "snapshot"}
            await change_reaches(reader, nc, "after the burst")
    finally:
        proc.stop(signal.SIGTERM)


@pytest.mark.parametrize("ping", [1.0], indirect=True)
async def test_a_peer_that_stops_answering_pings_is_dropped(gateway: str, nc: Client) -> None:
    host, port = gateway.removeprefix("ws://").split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    async with websockets.connect(f"{gateway}/ws") as reader:
        await reader.recv()
        # A hand-made client: it completes the handshake, then never reads or answers again.
        mute = socket.create_connection((host, int(port)))
        mute.sendall(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        assert mute.recv(12) == b"HTTP/1.1 101"
        try:
            for _ in range(100):
                if await clients_connected(gateway) == 2:
                    break
                await asyncio.sleep(0.05)
            assert await clients_connected(gateway) == 2
            for _ in range(100):  # pinged every second, dropped when no pong comes back
                if await clients_connected(gateway) == 1:
                    break
                await asyncio.sleep(0.1)
            assert await clients_connected(gateway) == 1
            await change_reaches(reader, nc, "after the mute peer")
        finally:
            mute.close()
