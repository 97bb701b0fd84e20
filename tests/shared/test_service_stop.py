"""A service's stop is bounded as a whole: whatever it waits on (a task that ignores
cancellation, an event loop stuck in a busy loop), the process exits STOP_DEADLINE after the
stop began, with status 4 and a log naming where each task and thread waited."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.procs import ROOT, base_env

HEADER = '''
import asyncio, contextlib, sys, time
from shared.service import run

async def stuck_cleanup() -> None:
    while True:  # swallows every cancellation, as a buggy library loop would
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
'''

MAINS = {
    "a task that ignores cancellation": '''
async def main(settings, stop):
    print("ready", flush=True)
    await stop.wait()
    await asyncio.create_task(stuck_cleanup(), name="reconnect-forever")
''',
    "an event loop that never yields": '''
async def main(settings, stop):
    print("ready", flush=True)
    await stop.wait()
    while True:
        time.sleep(0.01)
''',
    "a clean stop": '''
async def main(settings, stop):
    print("ready", flush=True)
    await stop.wait()
    await asyncio.sleep(0.2)
    print("stopped cleanly", flush=True)
''',
}


def run_service(tmp_path: Path, main: str, deadline: float) -> tuple[int, str, float]:
    script = HEADER + textwrap.dedent(main) + (
        f'\nsys.exit(run("extractor", "test service", main, [], stop_deadline={deadline}))\n')
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=base_env(tmp_path))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(30)
    finally:
        proc.kill()
    return status, proc.stdout.read(), time.monotonic() - began


@pytest.mark.parametrize("case", ["a task that ignores cancellation",
                                  "an event loop that never yields"])
def test_a_stop_that_hangs_ends_at_the_deadline(tmp_path: Path, case: str) -> None:
    status, output, took = run_service(tmp_path, MAINS[case], deadline=1.5)
    assert status == 4, output
    assert took >= 1.5
    assert "stop overran its deadline; exiting without finishing it" in output
    assert "SIGTERM" in output  # why the stop began
    if case == "a task that ignores cancellation":
        # the report says which task hung and on which line, so the hang can be fixed
        assert "reconnect-forever: " in output
        assert "stuck_cleanup (" in output
    else:
        assert "MainThread" in output  # each thread's stack: the main one in the busy loop
        assert "(/<string>:" in output


def test_a_clean_stop_is_not_cut_short(tmp_path: Path) -> None:
    status, output, _ = run_service(tmp_path, MAINS["a clean stop"], deadline=1.5)
    assert status == 0, output
    assert "stopped cleanly" in output
    assert "overran" not in output
