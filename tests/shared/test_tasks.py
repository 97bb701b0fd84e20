"""Background tasks: a crash is reported when it happens; a critical one stops the service with
status 3 (so a supervisor restarts it) instead of leaving it running degraded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared import tasks
from tests.procs import ROOT, base_env


async def _boom() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("boom")


async def _forever() -> None:
    await asyncio.Event().wait()


async def _returns() -> None:
    await asyncio.sleep(0.01)


def test_only_a_critical_task_that_crashes_or_ends_calls_the_handler() -> None:
    crashed: list[str] = []

    async def scenario() -> None:
        async with tasks.background(_forever(), "cancelled", critical=True):
            await asyncio.sleep(0.01)  # cancelled on exit: not a crash
        with pytest.raises(RuntimeError, match="boom"):  # nobody takes it: the scope gets it
            async with tasks.background(_boom(), "minor"):
                await asyncio.sleep(0.05)
        async with tasks.background(_boom(), "vital", critical=True):
            await asyncio.sleep(0.05)
            assert crashed == ["vital: boom"]  # reported while the scope still runs
        # ...and the scope closes quietly: the handler owns it, the stop sequence goes on
        async with tasks.background(_returns(), "loop", critical=True):
            await asyncio.sleep(0.05)

    tasks.on_crash(lambda name, error: crashed.append(f"{name}: {error}"))
    try:
        asyncio.run(scenario())
    finally:
        tasks.on_crash(None)
    assert crashed == ["vital: boom", "loop: ended on its own"]


def test_without_a_handler_a_critical_crash_reaches_its_scope() -> None:
    """Apps run in a test's own thread install no handler: errors surface as they always did."""
    async def scenario() -> None:
        async with tasks.background(_boom(), "vital", critical=True):
            await asyncio.sleep(0.05)

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(scenario())


def test_a_service_whose_critical_task_crashes_exits_3(tmp_path: Path) -> None:
    script = textwrap.dedent('''
        import asyncio, sys
        from shared.service import run
        from shared.tasks import background

        async def boom() -> None:
            await asyncio.sleep(0.1)
            raise RuntimeError("the follower broke")

        async def main(settings, stop):
            async with background(boom(), "follow-streams", critical=True):
                await stop.wait()
            print("stop sequence ran", flush=True)  # drain and clean-up still happen

        sys.exit(run("relay", "test service", main, []))
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False, cwd=ROOT, env=base_env(tmp_path))
    assert done.returncode == 3, done.stdout + done.stderr
    assert ("slipstream relay: stopped: background task follow-streams (RuntimeError: the "
            "follower broke) crashed") in done.stderr
    assert "background task crashed" in done.stdout + done.stderr  # logged when it happened
    assert "stop sequence ran" in done.stdout
