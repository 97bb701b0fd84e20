"""Child processes of ``slipstream up``: start, watch, restart with backoff, stop in order.

Children run in their own session (a terminal's Ctrl-C reaches only the supervisor, which then
stops them in order) and get SIGTERM from the kernel if the supervisor itself dies, so no
process outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from shared.natsserver import die_with_parent

MAX_BACKOFF: Final = 30.0
#: A child that ran this long before dying is considered healthy again (backoff resets).
STABLE_AFTER: Final = 60.0


@dataclass
class Child:
    """One supervised service process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def python_module(module: str) -> list[str]:
    """argv to run ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]


class Supervisor:
    """Keeps a set of children running until told to stop."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.children: list[Child] = []
        self.report = report

    def add(self, child: Child) -> None:
        self.children.append(child)
        child.start()

    def poll(self) -> None:
        """Restart children that died (with exponential backoff), reporting each death."""
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is None or proc.poll() is None:
                continue
            if child.next_start == 0.0:
                code = proc.returncode
                ran = now - child.started_at
                if ran > STABLE_AFTER:
                    child.backoff = 1.0
                child.exits.append(code)
                child.next_start = now + child.backoff
                self.report(f"{child.name} exited with status {code} after {ran:.1f} s; "
                            f"restarting in {child.backoff:.0f} s (log: {child.log_path})\n"
                            f"{child.log_tail()}")
                child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            elif now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                child.start()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child (last started first), then SIGKILL what is left after ``timeout``."""
        for child in reversed(self.children):
            if child.alive and child.process is not None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.report(f"{child.name} did not stop within {timeout:.0f} s; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
