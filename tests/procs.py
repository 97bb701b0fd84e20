"""Helpers for tests that run real processes: descendants, waiting for output and readiness."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time): a process's identity even if its pid is reused later."""
    try:
        return pid, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def still_running(ident: tuple[int, str] | None) -> bool:
    """Whether the process with this identity still runs (not a zombie, pid not reused)."""
    if ident is None or not alive(ident[0]):
        return False
    return identity(ident[0]) == ident


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Proc:
    """A process whose stderr+stdout is collected line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str], *, new_group: bool = False) -> None:
        # new_group: the process leads a process group of its own, as a shell's job does, so
        # a test can signal the whole group as a terminal's Ctrl-C would.
        self.popen = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                      process_group=0 if new_group else None)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.popen.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"exited {self.popen.returncode} before {text!r}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output}")

    def stop(self, sig: int, timeout: float = 30) -> int:
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout)
        self._reader.join(2)
        return code

    def kill_tree(self) -> None:
        for pid in children_of(self.popen.pid) | {self.popen.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.popen.wait(10)


def module(name: str) -> list[str]:
    return [sys.executable, "-m", name]


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               why: Callable[[], str] | None = None) -> None:
    """Wait for ``check``; on timeout fail saying what was awaited (and ``why()``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    said = f"\n{why()}" if why is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{said}")


def status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return None


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any SLIPSTREAM_/NATS_ setting leaking in from outside."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLIPSTREAM_", "NATS_"))}
    env["SLIPSTREAM_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def role_env(data: Path, role: str) -> dict[str, str]:
    """The environment that makes a service started beside a ``slipstream up`` (data folder
    ``data``) connect as ``role`` with the password that run generated, as up's own children do;
    empty when that run made no credentials."""
    path = data / "credentials" / f"{role}.password"
    if not path.exists():
        return {}
    return {"SLIPSTREAM_NATS_USER": role, "SLIPSTREAM_NATS_PASSWORD_FILE": str(path)}


def login(data: Path | None, role: str = "ops") -> dict[str, str]:
    """``nats.connect`` options to act as ``role`` (ops reads everything, scheduler publishes
    session events, extractor writes stream records) on the NATS of a ``slipstream up`` whose
    data folder is ``data``: its generated user, password and inbox prefix. Empty when that
    run made no credentials (an external NATS, or ``data`` is None)."""
    if data is None:
        return {}
    path = data / "credentials" / f"{role}.password"
    if not path.exists():
        return {}
    return {"user": role, "password": path.read_text().strip(), "inbox_prefix": f"_INBOX.{role}"}
