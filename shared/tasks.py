"""Background tasks tied to a scope: started on entry, cancelled and awaited on exit, so none is
ever left running on its own (no fire-and-forget).

A task that ends with an error is logged at once, not only when its scope exits. A *critical*
task (a service's long-lived loop: following a bucket, the feed's tick, the topology guard) is
one the service cannot do without: its crash also calls the crash handler, which the service
runner installs to stop the process with a non-zero status, so a supervisor (``slipstream up``,
Kubernetes) restarts it rather than leaving it running degraded while it still says "ready".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from shared import logs

log = logs.get(__name__)

#: Called with the task's name and error when a critical task crashes (see :func:`on_crash`).
_crash_handler: Callable[[str, BaseException], None] | None = None


def on_crash(handler: Callable[[str, BaseException], None] | None) -> None:
    """Install (or remove, with ``None``) what happens when a critical task crashes."""
    global _crash_handler  # noqa: PLW0603 - one handler per process, set by the runner
    _crash_handler = handler


def supervise(task: asyncio.Task[Any], name: str, *, critical: bool = False) -> None:
    """Log ``task``'s crash as soon as it happens (and, if ``critical``, call the handler)."""
    task.add_done_callback(_report(name, critical))


def _report(name: str, critical: bool) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        log.error("background task crashed", task=name, critical=critical,
                  error=f"{type(error).__name__}: {error}", exc_info=error)
        if critical and _crash_handler is not None:
            _crash_handler(name, error)
    return done


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None], name: str, *,
                     critical: bool = False) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` while the ``async with`` body runs; cancel and await it afterwards."""
    task = asyncio.create_task(coro, name=name)
    supervise(task, name, critical=critical)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
