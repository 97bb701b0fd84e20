"""``slipstream up``: embedded NATS, the demo origin and the four services on one machine.

Order: settings and ports are checked before anything starts (one error lists every problem);
NATS comes up (embedded unless ``SLIPSTREAM_NATS_URL`` is set), then the demo origin (it writes
the demo calendar), then the services. The runtime file in the data folder tells every other
``slipstream`` command where things are. SIGINT/SIGTERM stop everything, in reverse order,
within :data:`STOP_BUDGET` seconds. With ``log_format = json`` what ``up`` itself says is JSON
too, like every log file it writes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

import httpx

from services.cli.supervisor import Child, Supervisor, python_module
from shared import access, logs
from shared.calendar import demo_calendar_path
from shared.http import StartupError, bind
from shared.natsserver import EmbeddedNats, NatsServerError
from shared.runtime import (
    AlreadyRunningError,
    DataDirLock,
    RuntimeInfo,
    clear_runtime,
    ensure_data_dir,
    write_runtime,
)
from shared.settings import Settings

SERVICES: Final = ("scheduler", "extractor", "relay", "gateway")
READY_TIMEOUT: Final = 90.0
#: Seconds the services get to stop before they are killed; NATS stops after them.
STOP_BUDGET: Final = 3.5

Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def voice(settings: Settings) -> Say:
    """How ``up`` talks: plain lines for a person, or JSON log lines under ``log_format = json``."""
    if settings.log_format != "json":
        return _say
    logs.configure("up", settings.log_level, "json")
    log = logs.get(__name__)

    def say(text: str) -> None:
        log.info(text.strip())

    return say


def _endpoints(settings: Settings) -> dict[str, tuple[str, int]]:
    points = {
        "gateway": (settings.gateway.host, settings.gateway.port),
        "relay": (settings.relay.host, settings.relay.port),
        "scheduler": (settings.scheduler.host, settings.scheduler.port),
        "extractor": (settings.extractor.host, settings.extractor.port),
    }
    if settings.demo.enabled:
        points["demo"] = (settings.demo.host, settings.demo.port)
    return points


def check_ports(settings: Settings) -> None:
    """Fail with every port conflict at once, before anything starts."""
    problems = []
    seen: dict[tuple[str, int], str] = {}
    for name, (host, port) in _endpoints(settings).items():
        if (host, port) in seen:
            problems.append(f"{name}.port: {host}:{port} is also {seen[(host, port)]}.port")
            continue
        seen[(host, port)] = name
        try:
            bind(host, port, f"{name}.port").close()
        except StartupError as exc:
            problems.append(str(exc))
    if problems:
        raise StartupError("cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


def _child_env(settings: Settings, nats_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    if not settings.nats.servers:  # the embedded NATS: each child gets its own user below
        for name in ("USER", "PASSWORD", "PASSWORD_FILE"):
            env.pop(f"SLIPSTREAM_NATS_{name}", None)
    env["SLIPSTREAM_NATS_URL"] = nats_url
    env["SLIPSTREAM_DATA_DIR"] = str(data_dir)
    env["SLIPSTREAM_CHILD"] = "1"
    if settings.demo.enabled:
        if not settings.scheduler.calendar:
            env["SLIPSTREAM_SCHEDULER_CALENDAR"] = str(demo_calendar_path(data_dir))
        # The demo pages join the operator's sources; the extractor may reach the demo origin.
        env["SLIPSTREAM_EXTRACTOR_DEMO_SOURCES"] = "true"
        env["SLIPSTREAM_EXTRACTOR_DEMO_URL"] = settings.demo_url
    env.setdefault("SLIPSTREAM_LOG_FORMAT", "json")
    return env


def _wait_ready(sup: Supervisor, urls: dict[str, str], stopping: list[bool], say: Say) -> bool:
    pending = dict(urls)
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=1.0) as client:
        while pending and time.monotonic() < deadline and not stopping:
            sup.poll()
            for name, url in list(pending.items()):
                try:
                    if client.get(url).status_code == 200:
                        say(f"  {name:<10} ready")
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    if pending and not stopping:
        say(f"not ready after {READY_TIMEOUT:.0f} s: {', '.join(pending)} (see their logs in "
             f"{next(iter(sup.children)).log_path.parent})")
    return not pending


class _Up:
    """One run of ``slipstream up``: what it started, so that it can stop exactly that."""

    def __init__(self, settings: Settings, config: str | None, data_dir: Path, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.config = config
        self.data_dir = data_dir
        self.stopping: list[bool] = []
        self.nats: EmbeddedNats | None = None
        self.sup = Supervisor(say)
        self.logs = data_dir / "logs"

    def on_signal(self, signum: int, _: FrameType | None) -> None:
        if not self.stopping:
            self.say(f"\n{signal.Signals(signum).name}: stopping Slipstream")
        self.stopping.append(True)

    def start_nats(self) -> str:
        if self.settings.nats.servers:
            url = ",".join(self.settings.nats.servers)
            self.say(f"  nats       {url} (external)")
            return url
        # A user per role with its permissions; the passwords are made on the first start.
        creds = access.ensure_credentials(self.credentials)
        self.nats = EmbeddedNats(self.data_dir / "nats",
                                 json_log=self.settings.log_format != "console",
                                 authorization=access.authorization(
                                     {role: c.password for role, c in creds.items()}))
        url = self.nats.start()
        self.say(f"  nats       {url} (embedded, store {self.nats.folder / 'store'}, "
                 f"credentials {self.credentials})")
        return url

    @property
    def credentials(self) -> Path:
        return self.data_dir / access.CREDENTIALS_DIR

    def env_of(self, env: dict[str, str], name: str) -> dict[str, str]:
        """A child's environment: with the embedded NATS, its own role's user and password
        file (and no other's)."""
        if self.nats is None or name not in SERVICES:
            return env
        role = access.Role(name)
        return {**env, "SLIPSTREAM_NATS_USER": role.value,
                "SLIPSTREAM_NATS_PASSWORD_FILE": str(access.password_path(self.credentials, role))}

    def start(self) -> bool:
        """Start everything; ``False`` if start-up was interrupted or failed to get ready."""
        settings = self.settings
        check_ports(settings)
        self.say(f"Slipstream: data folder {self.data_dir}")
        nats_url = self.start_nats()
        env = _child_env(settings, nats_url, self.data_dir)
        if self.config:
            env["SLIPSTREAM_CONFIG"] = str(Path(self.config).resolve())
        health = {name: f"http://{h}:{p}/{'healthz' if name == 'demo' else 'readyz'}"
                  for name, (h, p) in _endpoints(settings).items()}
        if settings.demo.enabled:
            self.sup.add(Child("demo", python_module("services.demo"), env, self.logs / "demo.log"))
            if not _wait_ready(self.sup, {"demo": health["demo"]}, self.stopping, self.say):
                if self.stopping:
                    return False
                raise StartupError(f"the demo origin did not start; see {self.logs / 'demo.log'}")
        for name in SERVICES:
            self.sup.add(Child(name, python_module(f"services.{name}"), self.env_of(env, name),
                               self.logs / f"{name}.log"))
        write_runtime(self.data_dir, RuntimeInfo(
            pid=os.getpid(), started_at=datetime.now(UTC), nats_url=nats_url,
            gateway_url=settings.gateway_url, relay_url=settings.relay_public_url,
            demo_url=f"http://{settings.demo.host}:{settings.demo.port}" if settings.demo.enabled
            else None))
        if _wait_ready(self.sup, {n: health[n] for n in SERVICES}, self.stopping, self.say):
            demo = (f"\n  demo origin  http://{settings.demo.host}:{settings.demo.port}/"
                    if settings.demo.enabled else "")
            admin = ("configured (gateway.admin_tokens)" if settings.gateway.admin_tokens
                     else f"in {self.data_dir / 'admin.token'}")
            self.say(f"\nSlipstream is ready: open {settings.gateway_url}\n"
                 f"  admin page   {settings.gateway_url}/#/admin (admin token {admin})\n"
                 f"  relay        {settings.relay_public_url}/{demo}\n"
                 f"  logs         {self.logs}\n"
                 "Ctrl-C stops everything.")
        return not self.stopping

    def supervise(self) -> None:
        while not self.stopping:
            self.sup.poll()
            time.sleep(0.25)

    def stop(self) -> None:
        self.sup.stop(STOP_BUDGET)
        if self.nats is not None:
            self.nats.stop(timeout=STOP_BUDGET)
        clear_runtime(self.data_dir)


def up(settings: Settings, config: str | None) -> int:
    """Run everything until a signal; return the exit status."""
    say = voice(settings)
    data_dir = ensure_data_dir(settings)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        say(f"slipstream up: {exc}")
        return 1
    run = _Up(settings, config, data_dir, say)
    old = {s: signal.signal(s, run.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        run.start()
        run.supervise()
    except (StartupError, NatsServerError, access.CredentialsError) as exc:
        say(f"slipstream up: {exc}")
        status = 1
    finally:
        run.stop()
        lock.release()
        for s, handler in old.items():
            signal.signal(s, handler)
    if run.stopping:
        say("Slipstream stopped.")
    return status
