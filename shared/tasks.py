"""Background tasks tied to a scope: started on entry, cancelled and awaited on exit, so none is
ever left running on its own (no fire-and-forget).

A task that ends with an error is logged at once, not only when its scope exits. A *critical*
task (a service's long-lived loop: following a bucket, the feed's tick, the topology guard) is
one the service cannot do without: its crash, or its ending at all before its scope closes,
calls the crash handler, which the service runner installs to stop the process with status 3,
so a supervisor (``slipstream up``, Kubernetes) restarts it rather than leaving it running
degraded while it still says "ready". Once the handler has the error, the task's scope closes
quietly, so the service's normal stop sequence (drain, clean up) still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from shared import logs

log = logs.get(__name__)

CrashHandler = Callable[[str, BaseException], None]
#: What happens when a critical task crashes; per context, so each service's event loop (and
#: each app a test runs in its own thread) has its own or none.
_crash_handler: contextvars.ContextVar[CrashHandler | None] = contextvars.ContextVar(
    "crash_handler", default=None)


class EndedError(RuntimeError):
    """A critical task returned although it is meant to run as long as its scope."""


def on_crash(handler: CrashHandler | None) -> None:
    """Install (or remove, with ``None``) what happens when a critical task crashes."""
    _crash_handler.set(handler)


def crash(name: str, error: BaseException) -> bool:
    """Report that something the service cannot do without failed (``name``, ``error``) to the
    crash handler of this context; ``False`` when none is installed (a test, a CLI)."""
    handler = _crash_handler.get()
    if handler is None:
        return False
    handler(name, error)
    return True


def supervise(task: asyncio.Task[Any], name: str, *, critical: bool = False) -> list[bool]:
    """Log ``task``'s crash as soon as it happens (and, if ``critical``, call the handler).
    Returns a flag list that holds ``True`` once a handler took the crash."""
    handled: list[bool] = []
    handler = _crash_handler.get()

    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            if not critical:
                return
            error = EndedError("ended on its own")
        first = not getattr(error, "_slipstream_reported", False)
        with contextlib.suppress(AttributeError):
            error._slipstream_reported = True  # type: ignore[attr-defined]
        log.error("background task crashed", task=name, critical=critical,
                  error=f"{type(error).__name__}: {error}", exc_info=error if first else None)
        if critical and handler is not None:
            handler(name, error)
            handled.append(True)

    task.add_done_callback(done)
    return handled


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, None], name: str, *,
                     critical: bool = False) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``coro`` while the ``async with`` body runs; cancel and await it afterwards."""
    task = asyncio.create_task(coro, name=name)
    handled = supervise(task, name, critical=critical)
    try:
        yield task
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            if not handled:
                raise  # nobody took it: the owner's scope gets the error, as always
