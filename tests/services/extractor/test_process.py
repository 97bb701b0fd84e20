"""Extractor processes on a real nats-server and a real demo origin: sharing and crashing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest

from services.demo.app import create_app
from shared import subjects, topology
from shared.codec import decode, encode
from shared.natsserver import EmbeddedNats
from shared.sessions import Live, Session, SessionKind
from shared.streams import Health, StreamRecord
from tests.conftest import free_port
from tests.procs import Proc, base_env, module, status, wait_until
from tests.services.extractor.conftest import Counting

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NOW = datetime.now(UTC).replace(microsecond=0)
SESSION = Session(key=f"{NOW.year}.demo.race", season=NOW.year, round=2, event="Demo GP",
                  kind=SessionKind.RACE, name="Race", start=NOW - timedelta(minutes=5),
                  end=NOW + timedelta(hours=2))
SOURCES = ("demo-plain", "demo-embedded", "demo-scripted")


def extractor(url: str, demo: str, tmp: Path, name: str) -> tuple[Proc, int]:
    port = free_port()
    env = base_env(tmp / name, SLIPSTREAM_NATS_URL=url, SLIPSTREAM_EXTRACTOR_PORT=str(port),
                   SLIPSTREAM_EXTRACTOR_DEMO_SOURCES="true", SLIPSTREAM_EXTRACTOR_DEMO_URL=demo,
                   SLIPSTREAM_EXTRACTOR_PROBE_INTERVAL="2")
    proc = Proc(module("services.extractor"), env)
    wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 45, f"{name} ready")
    return proc, port


async def go_live(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        event = Live(session=SESSION, at=NOW)
        await (await topology.sessions_kv(js)).put(SESSION.key, encode(event))
        await js.publish(subjects.session_event(SESSION.key, "live"), encode(event))
    finally:
        await nc.drain()


async def records(url: str) -> dict[str, StreamRecord]:
    nc = await nats.connect(url)
    try:
        kv = await topology.streams_kv(nc.jetstream())
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return {}
        out = {}
        for key in keys:
            entry = await kv.get(key)
            if entry.value:
                out[key] = decode(entry.value, StreamRecord)
        return out
    finally:
        await nc.drain()


async def jobs_delivered(url: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(topology.JOBS_STREAM, topology.WORKER_CONSUMER)
        return int(info.delivered.consumer_seq)
    finally:
        await nc.drain()


def all_ok(url: str) -> bool:
    got = asyncio.run(records(url))
    return len(got) == 3 and all(r.health is Health.OK for r in got.values())


def test_two_extractors_share_sources_and_survive_a_crash(
        tmp_path: Path, nats_server: EmbeddedNats, serve: Callable[[Any], str]) -> None:
    """Each source is resolved once between two processes; killing one loses no stream."""
    origin = Counting(create_app())
    demo = serve(origin)  # type: ignore[arg-type]
    a, _ = extractor(nats_server.url, demo, tmp_path, "a")
    b, _ = extractor(nats_server.url, demo, tmp_path, "b")
    try:
        asyncio.run(go_live(nats_server.url))
        wait_until(lambda: all_ok(nats_server.url), 60, "three healthy streams")
        got = asyncio.run(records(nats_server.url))
        assert sorted(got) == sorted(subjects.stream_key(SESSION.key, s) for s in SOURCES)
        assert got[subjects.stream_key(SESSION.key, "demo-scripted")].extractor == "browser"
        # Each page was resolved by exactly one of the two processes.
        assert origin.hits["/pages/plain"] == 1
        assert origin.hits["/pages/embedded"] == 1

        os.kill(a.popen.pid, signal.SIGKILL)
        a.popen.wait(10)
        before = asyncio.run(jobs_delivered(nats_server.url))
        # Jobs held by the dead process come back after the ack wait; the survivor runs them.
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            time.sleep(2)
            if asyncio.run(jobs_delivered(nats_server.url)) > before + 6:
                break
        assert asyncio.run(jobs_delivered(nats_server.url)) > before + 6
        assert all_ok(nats_server.url)
        assert len(asyncio.run(records(nats_server.url))) == 3
    finally:
        for proc in (a, b):
            if proc.popen.poll() is None:
                assert proc.stop(signal.SIGTERM) == 0, proc.output
