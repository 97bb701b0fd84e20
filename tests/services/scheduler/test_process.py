"""The real scheduler process on a real nats-server: killed and restarted, or doubled up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import tomli_w

from shared import subjects, topology
from shared.kv import keys as kv_keys
from shared.natsserver import EmbeddedNats
from tests.conftest import free_port
from tests.procs import Proc, base_env, module, status, wait_until
from tests.services.scheduler.test_weekend import published

pytestmark = pytest.mark.timeout(120)


def near_calendar(path: Path, now: datetime) -> dict[str, datetime]:
    """Two short sessions a few seconds from now, so real time walks them through every phase."""
    base = now.replace(microsecond=0)
    times = {"a": base + timedelta(seconds=5), "b": base + timedelta(seconds=9)}
    path.write_text(tomli_w.dumps({"season": base.year, "events": [{
        "round": 1, "name": "Process Test Grand Prix", "slug": "proc", "sessions": [
            {"kind": "sprint", "start": times["a"], "end": times["a"] + timedelta(seconds=2)},
            {"kind": "race", "start": times["b"], "end": times["b"] + timedelta(seconds=2)},
        ]}]}))
    return times


def start(nats_url: str, tmp: Path, calendar: Path, name: str) -> tuple[Proc, int]:
    port = free_port()
    env = base_env(tmp / name, SLIPSTREAM_NATS_URL=nats_url, SLIPSTREAM_SCHEDULER_PORT=str(port),
                   SLIPSTREAM_SCHEDULER_CALENDAR=str(calendar),
                   SLIPSTREAM_SCHEDULER_LEAD_TIME="2", SLIPSTREAM_SCHEDULER_GRACE="1")
    proc = Proc(module("services.scheduler"), env)
    wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 45, "scheduler ready")
    return proc, port


def phases(events: list[tuple[str, str, object]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, phase, _ in events:
        out.setdefault(key, []).append(phase)
    return out


async def collect(url: str) -> list[tuple[str, str, object]]:
    nc = await nats.connect(url)
    try:
        return await published(nc)  # type: ignore[return-value]
    finally:
        await nc.drain()


def test_killed_scheduler_restarts_without_missing_or_repeating(tmp_path: Path,
                                                                nats_server: EmbeddedNats) -> None:
    """SIGKILL mid-weekend, restart after the sessions ran: every transition exactly once."""
    calendar = tmp_path / "calendar.toml"
    times = near_calendar(calendar, datetime.now(UTC) + timedelta(seconds=2))
    proc, _ = start(nats_server.url, tmp_path, calendar, "one")
    wait_until(lambda: datetime.now(UTC) > times["a"] + timedelta(seconds=0.5), 30, "sprint live")
    os.kill(proc.popen.pid, signal.SIGKILL)
    proc.popen.wait(10)
    # Down while the sprint ends and the race runs its whole course.
    while datetime.now(UTC) < times["b"] + timedelta(seconds=4):
        time.sleep(0.2)
    proc, _ = start(nats_server.url, tmp_path, calendar, "two")
    try:
        wait_until(lambda: len(asyncio.run(collect(nats_server.url))) >= 8, 20, "catch-up")
        time.sleep(1)
    finally:
        assert proc.stop(signal.SIGTERM) == 0, proc.output
    got = phases(asyncio.run(collect(nats_server.url)))
    full = ["scheduled", "upcoming", "live", "ended"]
    year = times["a"].year
    assert got == {f"{year}.proc.sprint": full, f"{year}.proc.race": full}


def test_two_scheduler_processes_side_by_side_never_duplicate(tmp_path: Path,
                                                              nats_server: EmbeddedNats) -> None:
    """Two live schedulers on one NATS publish each transition of each session once."""
    calendar = tmp_path / "calendar.toml"
    times = near_calendar(calendar, datetime.now(UTC) + timedelta(seconds=3))
    a, _ = start(nats_server.url, tmp_path, calendar, "a")
    b, _ = start(nats_server.url, tmp_path, calendar, "b")
    try:
        while datetime.now(UTC) < times["b"] + timedelta(seconds=5):
            time.sleep(0.2)
    finally:
        codes = (a.stop(signal.SIGTERM), b.stop(signal.SIGTERM))
    assert codes == (0, 0), a.output + b.output
    events = asyncio.run(collect(nats_server.url))
    pairs = [(k, p) for k, p, _ in events]
    assert len(pairs) == len(set(pairs)) == 8, pairs


def test_resync_on_request_publishes_a_reschedule(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    """A request on control.scheduler.resync re-reads the calendar at once."""
    calendar = tmp_path / "calendar.toml"
    now = datetime.now(UTC)
    times = near_calendar(calendar, now + timedelta(hours=2))
    proc, _ = start(nats_server.url, tmp_path, calendar, "one")
    try:
        near_calendar(calendar, now + timedelta(hours=3))

        async def ask() -> bytes:
            nc = await nats.connect(nats_server.url)
            try:
                return (await nc.request(subjects.SCHEDULER_RESYNC, b"", timeout=5)).data
            finally:
                await nc.drain()

        assert b"resync requested" in asyncio.run(ask())
        wait_until(lambda: any(p == "rescheduled" for _, p, _ in asyncio.run(collect(nats_server.url))),
                   20, "rescheduled")
    finally:
        assert proc.stop(signal.SIGTERM) == 0, proc.output
    events = asyncio.run(collect(nats_server.url))
    moved = [e for _, p, e in events if p == "rescheduled"]
    assert len(moved) == 2
    assert {e.previous_start for e in moved} == set(times.values())  # type: ignore[attr-defined]


async def _session_keys(url: str) -> dict[str, tuple[str, int]]:
    """Each recorded session's phase and KV revision."""
    nc = await nats.connect(url)
    try:
        kv = await topology.sessions_kv(nc.jetstream())
        entries = [await kv.get(key) for key in await kv_keys(kv, ">")]
        return {e.key: (json.loads(e.value or b"{}")["phase"], e.revision or 0) for e in entries}
    finally:
        await nc.drain()


async def _lose_sessions(url: str, how: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        if how == "keys purged":
            kv = await topology.sessions_kv(js)
            for key in await kv_keys(kv, ">"):
                await kv.purge(key)
        else:
            await js.purge_stream(topology.SESSIONS_BUCKET_STREAM)
    finally:
        await nc.drain()


def test_session_states_emptied_behind_its_back_are_recorded_again(
        tmp_path: Path, nats_server: EmbeddedNats) -> None:
    """The sessions bucket emptied while the bucket itself stays (every key purged, or its
    stream purged, which no watcher hears about) is rebuilt within seconds, not at the next
    daily resync; the SESSIONS stream gets no repeats."""
    calendar = tmp_path / "calendar.toml"
    near_calendar(calendar, datetime.now(UTC) + timedelta(hours=2))
    proc, _ = start(nats_server.url, tmp_path, calendar, "one")
    try:
        wait_until(lambda: len(asyncio.run(_session_keys(nats_server.url))) == 2, 20, "recorded")
        before = asyncio.run(_session_keys(nats_server.url))
        events = len(asyncio.run(collect(nats_server.url)))
        for how in ("keys purged", "stream purged"):
            asyncio.run(_lose_sessions(nats_server.url, how))

            def again(old: dict[str, tuple[str, int]] = before) -> bool:
                now = asyncio.run(_session_keys(nats_server.url))
                return ({k: v for k, (v, _) in now.items()} == {k: v for k, (v, _) in old.items()}
                        and all(now[k][1] > old[k][1] for k in old))

            wait_until(again, 20, f"sessions recorded again after {how}")
            before = asyncio.run(_session_keys(nats_server.url))
        assert len(asyncio.run(collect(nats_server.url))) == events  # no event published twice
    finally:
        assert proc.stop(signal.SIGTERM) == 0, proc.output
    assert "session states vanished from the KV" in proc.output
