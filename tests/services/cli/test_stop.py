"""Stopping `slipstream up` and its services is quick and complete, and every log line is JSON.

A source whose page never requests a playlist keeps a Chromium extraction in flight, so each
stop below interrupts real work: the browser, NATS requests, viewers' HTTP connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.demo.app import create_app
from shared.natsserver import EmbeddedNats
from tests.conftest import free_port
from tests.procs import (
    Proc,
    base_env,
    children_of,
    identity,
    module,
    status,
    still_running,
    wait_until,
)
from tests.services.cli.test_up import ports_env, slipstream, sprint_streams
from tests.system import go_live

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: The target: every process gone this long after the signal.
STOP_WITHIN = 5.0


def _chromium(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            if "chromium" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.add(pid)
        except OSError:
            continue
    return found


def start(tmp_path: Path) -> tuple[Proc, dict[str, str], dict[str, int]]:
    """`slipstream up` with JSON logs, as a terminal's job (its own process group), plus a
    source whose browser extraction never finishes on its own (the demo's index page requests
    no playlist: Chromium waits for one until the deadline)."""
    env, ports = ports_env(tmp_path)
    env["SLIPSTREAM_LOG_FORMAT"] = "json"
    config = tmp_path / "slipstream.toml"
    config.write_text(f'[[sources]]\nid = "stuck"\nurl = "http://127.0.0.1:{ports["demo"]}/"\n'
                      'extractor = "browser"\n\n[extractor]\ndeadline = 60\n')
    env["SLIPSTREAM_CONFIG"] = str(config)
    proc = Proc(slipstream("up"), env, new_group=True)
    proc.wait_for("Slipstream is ready", timeout=120)
    return proc, env, ports


def first_stream(proc: Proc, data: Path) -> str:
    runtime = json.loads((data / "runtime.json").read_text())
    url = str(runtime["nats_url"])

    def one_ok() -> bool:
        return "ok" in asyncio.run(sprint_streams(url, data)).values()

    wait_until(one_ok, 90, "the first healthy stream")
    wait_until(lambda: bool(_chromium(children_of(proc.popen.pid))), 60, "Chromium at work")
    return url


def stop_group(proc: Proc, sig: int) -> float:
    """Signal the process group of `up`; seconds until it and every descendant are gone."""
    before = {identity(p) for p in children_of(proc.popen.pid)} - {None}
    assert _chromium({p for p, _ in before}), "Chromium should be running before the stop"
    start = time.monotonic()
    os.killpg(proc.popen.pid, sig)
    deadline = start + 30
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None and not any(still_running(i) for i in before):
            break
        time.sleep(0.02)
    took = time.monotonic() - start
    left = [i for i in before if still_running(i)]
    proc.popen.wait(10)
    assert not left, f"still running {took:.1f} s after {signal.Signals(sig).name}: {left}"
    return took


def assert_every_log_line_is_json(proc: Proc, data: Path) -> None:
    files = [*sorted((data / "logs").glob("*.log")), data / "nats" / "nats-server.log"]
    sources = {str(f): f.read_text(errors="replace").splitlines() for f in files}
    sources["stderr of slipstream up"] = proc.lines
    assert len(files) == 6
    assert all(sources.values()), sorted(sources)
    for where, lines in sources.items():
        for line in lines:
            assert "\x1b" not in line, f"{where}: colour codes: {line!r}"
            assert "\\u001b" not in line, f"{where}: colour codes: {line!r}"
            try:
                parsed = json.loads(line)
            except ValueError:
                pytest.fail(f"{where}: not JSON: {line!r}")
            assert isinstance(parsed, dict), f"{where}: {line!r}"
            assert "event" in parsed, f"{where}: {line!r}"


def test_ctrl_c_right_after_the_first_stream_stops_everything_within_5_s(tmp_path: Path) -> None:
    """SIGINT to the process group (Ctrl-C), with Chromium mid-extraction: all gone within
    5 s, exit 0, and every line written to the log files and to stderr is JSON."""
    proc, _, _ = start(tmp_path)
    try:
        first_stream(proc, tmp_path / "data")
        took = stop_group(proc, signal.SIGINT)
    finally:
        if proc.popen.poll() is None:
            proc.kill_tree()
    assert took < STOP_WITHIN, f"took {took:.1f} s\n{proc.output}"
    assert proc.popen.returncode == 0, proc.output
    assert_every_log_line_is_json(proc, tmp_path / "data")
    extractor_log = (tmp_path / "data" / "logs" / "extractor.log").read_text()
    # The stop cancelled the extraction in flight (its job went back to the queue) instead of
    # waiting for it, and FastStream's own lines are gone (ours go through structlog).
    assert "job run cancelled by the stop" in extractor_log
    assert "is being executed" not in extractor_log


def test_sigterm_after_a_minute_stops_everything_within_5_s(tmp_path: Path) -> None:
    """SIGTERM to the process group after a minute of running, just after a new session went
    live (every source's job starting at once): all gone within 5 s, Chromium included."""
    proc, _, _ = start(tmp_path)
    try:
        url = first_stream(proc, tmp_path / "data")
        time.sleep(60)
        go_live([url], "2099.stopping.race", tmp_path / "data")
        time.sleep(1.5)
        took = stop_group(proc, signal.SIGTERM)
    finally:
        if proc.popen.poll() is None:
            proc.kill_tree()
    assert took < STOP_WITHIN, f"took {took:.1f} s\n{proc.output}"
    assert proc.popen.returncode == 0, proc.output
    assert_every_log_line_is_json(proc, tmp_path / "data")


def test_one_extractor_stops_within_5_s_even_when_nats_is_gone(
        tmp_path: Path, serve: Callable[[Any], str]) -> None:
    """A service told to stop on its own (Kubernetes' SIGTERM) while its NATS is already gone
    gives up on the broker instead of waiting out reconnects, and takes Chromium with it."""
    demo = serve(create_app())
    server = EmbeddedNats(tmp_path / "nats")
    url = server.start()
    config = tmp_path / "slipstream.toml"
    config.write_text(f'[[sources]]\nid = "stuck"\nurl = "{demo}/"\nextractor = "browser"\n\n'
                      '[extractor]\ndeadline = 60\n')
    port = free_port()
    env = base_env(tmp_path / "data", SLIPSTREAM_NATS_URL=url, SLIPSTREAM_CONFIG=str(config),
                   SLIPSTREAM_EXTRACTOR_PORT=str(port), SLIPSTREAM_EXTRACTOR_DEMO_URL=demo,
                   SLIPSTREAM_LOG_FORMAT="json")
    proc = Proc(module("services.extractor"), env)
    try:
        wait_until(lambda: status(f"http://127.0.0.1:{port}/readyz") == 200, 45, "extractor ready")
        go_live([url], "2099.alone.race")
        wait_until(lambda: bool(_chromium(children_of(proc.popen.pid))), 60, "Chromium at work")
        before = {identity(p) for p in children_of(proc.popen.pid) | {proc.popen.pid}} - {None}
        server.kill()
        time.sleep(0.5)  # the extractor has noticed: it is reconnecting
        start = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        deadline = start + 30
        while time.monotonic() < deadline and any(still_running(i) for i in before):
            time.sleep(0.02)
        took = time.monotonic() - start
    finally:
        if proc.popen.poll() is None:
            proc.kill_tree()
        server.stop()
    assert took < STOP_WITHIN, f"took {took:.1f} s\n{proc.output}"
    assert proc.popen.wait(5) == 0, proc.output
