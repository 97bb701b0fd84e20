"""Whole-system helpers for tests that run the services as real processes on a NATS of their
choosing (one node or a cluster), with the demo origin as the only source."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from services.scheduler.publisher import Publisher, read_state
from shared import topology
from shared.calendar import demo_calendar_path
from shared.codec import decode
from shared.kv import keys as kv_keys
from shared.sessions import Live, Session, SessionKind
from shared.streams import Health, StreamRecord
from tests.conftest import free_port
from tests.procs import Proc, base_env, login, module, status, wait_until


@dataclass
class System:
    """Services started against ``servers``; ``ports`` by process name."""

    data: Path
    servers: list[str]
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports["demo"] = free_port()
        self.env = {"SLIPSTREAM_NATS_URL": ",".join(self.servers),
                    "SLIPSTREAM_NATS_RECONNECT_WAIT": "0.2",
                    "SLIPSTREAM_DEMO_PORT": str(self.ports["demo"]),
                    "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true",
                    "SLIPSTREAM_EXTRACTOR_DEMO_URL": f"http://127.0.0.1:{self.ports['demo']}",
                    "SLIPSTREAM_EXTRACTOR_PROBE_INTERVAL": "2",
                    "SLIPSTREAM_SCHEDULER_CALENDAR": str(demo_calendar_path(self.data)),
                    "SLIPSTREAM_LOG_FORMAT": "json", "SLIPSTREAM_LOG_LEVEL": "debug"}

    def start(self, name: str, service: str, **env: str) -> Proc:
        if service != "demo":
            self.ports[name] = free_port()
            env[f"SLIPSTREAM_{service.upper()}_PORT"] = str(self.ports[name])
        self.procs[name] = Proc(module(f"services.{service}"), base_env(self.data, **self.env, **env))
        if service == "demo":
            self.procs[name].wait_for("demo origin ready", 60)
        return self.procs[name]

    def url(self, name: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def wait_ready(self, timeout: float = 90) -> None:
        for name in self.procs:
            if name != "demo":
                wait_until(lambda n=name: status(self.url(n, "/readyz")) == 200, timeout,  # type: ignore[misc]
                           f"{name} ready")

    def tails(self, lines: int = 40) -> str:
        """The end of every process's output, for a failing test's message."""
        return "\n".join(f"--- {name}\n" + "\n".join(proc.lines[-lines:])
                         for name, proc in self.procs.items())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                with contextlib.suppress(OSError):
                    proc.stop(signal.SIGTERM, timeout=30)


async def _records(servers: list[str], pattern: str,
                   data: Path | None = None) -> dict[str, tuple[Health, int]]:
    nc = await nats.connect(servers, connect_timeout=2, **login(data, "ops"))
    try:
        kv = await topology.streams_kv(nc.jetstream())
        found = {}
        for key in await kv_keys(kv, pattern):
            entry = await kv.get(key)
            if entry.value:
                found[key] = (decode(entry.value, StreamRecord).health, entry.revision or 0)
        return found
    finally:
        await nc.close()


async def stored_events(js: Any) -> set[tuple[str, str | None]]:
    """Every message of SESSIONS as (subject, Nats-Msg-Id)."""
    info = await js.stream_info(topology.SESSIONS_STREAM)
    events = set()
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.SESSIONS_STREAM, seq)
        events.add((msg.subject, (msg.headers or {}).get("Nats-Msg-Id")))
    return events


def records(servers: list[str], pattern: str = "*.demo.sprint.*",
            data: Path | None = None) -> dict[str, tuple[Health, int]]:
    """Health and revision of each stream record whose key matches ``pattern`` (``data``: the
    data folder of a ``slipstream up`` whose NATS needs its credentials)."""
    return asyncio.run(_records(servers, pattern, data))


def healthy(servers: list[str], pattern: str = "*.demo.sprint.*", count: int = 3,
            data: Path | None = None) -> bool:
    got = records(servers, pattern, data)
    return len(got) == count and all(h is Health.OK for h, _ in got.values())


async def _go_live(servers: list[str], session: Session, data: Path | None) -> None:
    nc = await nats.connect(servers, connect_timeout=2, **login(data, "scheduler"))
    try:
        await publish_live(nc, session)
    finally:
        await nc.drain()


async def publish_live(nc: Any, session: Session) -> None:
    """Publish, as the scheduler would, that ``session`` is live now."""
    js = nc.jetstream()
    kv = await topology.sessions_kv(js)
    await Publisher(js, kv, await read_state(kv)).publish(Live(session=session, at=datetime.now(UTC)))


def live_session(key: str) -> Session:
    season, event, kind = key.split(".")
    start = datetime.now(UTC).replace(microsecond=0)
    return Session(key=key, season=int(season), round=1, event=event.title(),
                   kind=SessionKind(kind), name=kind.title(), start=start,
                   end=start + timedelta(hours=2))


async def go_live_event(nc: Any, key: str) -> Session:
    """:func:`go_live` on a connected client."""
    session = live_session(key)
    await publish_live(nc, session)
    return session


def go_live(servers: list[str], key: str, data: Path | None = None) -> Session:
    """Publish, as the scheduler would, that a session of season 2099 (which no calendar
    manages, so nothing else moves it) is live now."""
    session = live_session(key)
    asyncio.run(_go_live(servers, session, data))
    return session
