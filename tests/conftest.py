"""Fixtures that start real things: nats-server with JetStream, redis-server, HTTP origins.

Nothing here uses the NATS or Redis that may already run on the machine (a fresh machine has
neither): each is started on a free loopback port with a temporary store, or taken from
``SLIPSTREAM_TEST_NATS_URL`` / ``SLIPSTREAM_TEST_REDIS_URL`` when explicitly given.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import nats
import pytest
from litestar import Litestar
from nats.aio.client import Client

from shared import topology
from shared.http import bind
from shared.http import server as http_server
from shared.natsserver import EmbeddedNats

#: Whole-system modules that measure time or memory closely, or extract with Chromium against
#: a deadline: last among the whole-system tests, when the other tests are done.
LATE: Final = ("tests/services/relay/test_channel_ffmpeg.py", "tests/ui/", "tests/reliability/",
               "tests/gallery/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start whole systems (marked ``slow``) first, with :data:`LATE` at their
    end (each module's tests stay together): ``scripts/test`` runs them in one pytest beside
    another running the rest, so these come once the rest is done."""
    def order(item: pytest.Item) -> tuple[int, int]:
        if item.get_closest_marker("slow") is None:
            return (1, 0)
        path = item.nodeid
        return (0, next((i + 1 for i, late in enumerate(LATE) if path.startswith(late)), 0))

    items.sort(key=order)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free a moment ago (held together, so never the same twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A fresh nats-server with JetStream on a free loopback port, its store in tmp_path."""
    server = EmbeddedNats(tmp_path / "nats", name="slipstream-test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(request: pytest.FixtureRequest) -> str:
    """URL of a NATS for this test: SLIPSTREAM_TEST_NATS_URL, or a fresh embedded server."""
    given = os.environ.get("SLIPSTREAM_TEST_NATS_URL")
    if given:
        return given
    server: EmbeddedNats = request.getfixturevalue("nats_server")
    return server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A connected nats-py client with the topology applied."""
    client = await nats.connect(nats_url, name="slipstream-test")
    await topology.apply(client.jetstream())
    try:
        yield client
    finally:
        await client.drain()


def start_redis(folder: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a private redis-server on a free loopback port (or ``port``); return it and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail(f"redis-server exited with status {proc.returncode} (port {port}, dir {folder})")
    return proc, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port (or SLIPSTREAM_TEST_REDIS_URL)."""
    given = os.environ.get("SLIPSTREAM_TEST_REDIS_URL")
    if given:
        yield given
        return
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at a fixed instant (2026-05-24 13:00:00 UTC)."""
    return FakeClock(datetime(2026, 5, 24, 13, 0, 0, tzinfo=UTC))


async def until_ready(base: str, within: float = 20.0) -> None:
    """Wait until the service at ``base`` answers ``/readyz`` with 200; fail the test if it
    does not within ``within`` seconds, saying what it answered last."""
    last = "no answer"
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                reply = await http.get("/readyz")
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if reply.status_code == 200:
                    return
                last = f"{reply.status_code} {reply.text[:300]}"
            await asyncio.sleep(0.05)
    pytest.fail(f"{base} not ready within {within} s: {last}")


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Serve Litestar apps on free loopback ports in a background thread; returns base URLs.
    ``send_buffer`` is passed to :func:`shared.http.bind`, as the services do."""

    started: list[tuple[object, threading.Thread]] = []

    def _serve(app: Litestar, send_buffer: int | None = None, port: int = 0,
               ws_ping: float = 20.0) -> str:
        sock = bind("127.0.0.1", port, "test.port", send_buffer=send_buffer)
        port = sock.getsockname()[1]
        srv = http_server(app, log_level="warning", ws_ping=ws_ping)
        thread = threading.Thread(target=lambda: asyncio.run(srv.serve([sock])), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not srv.started and time.monotonic() < deadline:
            time.sleep(0.01)
        started.append((srv, thread))
        return f"http://127.0.0.1:{port}"

    yield _serve
    for srv, thread in started:
        srv.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)
