"""Running one service process: arguments, settings, logging, signals, NATS link, exit codes.

Each service's ``__main__`` calls :func:`run` with its async main; the runner turns settings
errors and operator-fixable start-up errors into one readable message and a non-zero exit
(2 for settings, 1 for start-up), turns SIGINT/SIGTERM into a graceful stop, and stops the
service with status 3 when one of its critical background tasks crashes (a supervisor then
restarts it: crash and restart rather than run on degraded).

A stop is bounded: in-flight handlers get :data:`shared.bus.STOP_GRACE`, a NATS connection that
is already gone is closed instead of drained, HTTP requests get :data:`HTTP_GRACE`, and worker
threads still blocked in a library call (yt-dlp, streamlink) when everything else has stopped
do not keep the process alive: it exits without them.

Whatever the stop sequence waits on, it cannot outlast :data:`STOP_DEADLINE`: a watchdog
thread, armed when the stop begins (a signal, a crash), writes where every task and thread was
waiting and exits the process with status 4. A service whose parent died (SIGKILL of
`slipstream up`, and NATS with it) must not live on as an orphan reconnecting forever.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

from faststream.nats import NatsBroker
from litestar import Litestar
from litestar.datastructures import State
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoServersError

from shared import bus, logs, subjects, topology
from shared.health import ROUTES, Readiness, nats_checks
from shared.http import StartupError, bind
from shared.http import server as http_server
from shared.runtime import NatsNotFoundError
from shared.settings import Settings, SettingsError, load_settings
from shared.tasks import background, crash, on_crash, supervise

log = logs.get(__name__)

EXIT_SETTINGS: Final = 2
EXIT_STARTUP: Final = 1
EXIT_CRASHED: Final = 3
EXIT_STOP_OVERRAN: Final = 4
#: Seconds an HTTP server gives in-flight requests (a viewer's segment) when stopping.
HTTP_GRACE: Final = 2
#: Seconds the event loop's worker threads get once the service has stopped.
THREAD_GRACE: Final = 0.5
#: Seconds from the start of a stop until the process exits whether the stop finished or not:
#: the broker's bounded stop (2 x STOP_GRACE), the HTTP grace, closing a browser, with room.
STOP_DEADLINE: Final = 15.0


class CrashedError(RuntimeError):
    """A critical background task of the service crashed; the service stopped."""

Main = Callable[[Settings, asyncio.Event], Awaitable[None]]

_EPILOG = """\
settings come from the TOML file and SLIPSTREAM_* environment variables (environment wins),
e.g. SLIPSTREAM_NATS_URL, SLIPSTREAM_DATA_DIR, SLIPSTREAM_RELAY_PORT; see the README.
Without SLIPSTREAM_NATS_URL the service joins the NATS of a running `slipstream up`.
"""


def parser(service: str, description: str) -> argparse.ArgumentParser:
    """The argument parser every service shares."""
    p = argparse.ArgumentParser(prog=f"python -m services.{service}", description=description,
                                epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="TOML settings file (default: $SLIPSTREAM_CONFIG)")
    return p


def run(service: str, description: str, main: Main, argv: Sequence[str] | None = None, *,
        new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        stop_deadline: float = STOP_DEADLINE) -> int:
    """Parse arguments, load settings, run ``main`` until a signal; return the exit status.
    ``new_loop`` makes the event loop (``uvloop.new_event_loop`` for the relay); a stop that
    has not finished ``stop_deadline`` seconds after it began ends the process (status 4)."""
    args = parser(service, description).parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"slipstream {service}: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    logs.configure(service, settings.log_level, settings.log_format)
    status = 0
    watchdog = StopWatchdog(stop_deadline)
    try:
        _run_loop(_with_signals(main, settings, watchdog), new_loop)
    except (StartupError, NatsNotFoundError) as exc:
        log.error(f"slipstream {service}: {exc}")
        status = EXIT_STARTUP
    except CrashedError as exc:
        log.error(f"slipstream {service}: {exc}")
        status = EXIT_CRASHED
    finally:
        watchdog.disarm()  # the stop is over (the loop's own clean-up included)
    _exit_without_stuck_threads(status)
    return status


def _run_loop(main: Coroutine[Any, Any, None],
              new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop) -> None:
    """``asyncio.run`` without its unbounded wait for the default executor's threads."""
    loop = new_loop()
    try:
        loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            _shutdown_executor(loop)
        finally:
            loop.close()


def _shutdown_executor(loop: asyncio.AbstractEventLoop) -> None:
    """Give the default executor's threads THREAD_GRACE to finish. Not through
    ``loop.shutdown_default_executor`` under a timeout: its thread would later set the result
    of the future the timeout cancelled, and asyncio logs that as an error on every stop."""
    executor = getattr(loop, "_default_executor", None)  # 3.12 has a timeout for this
    if executor is None:
        return
    waiter = threading.Thread(target=executor.shutdown, kwargs={"wait": True},
                              name="executor-shutdown", daemon=True)
    waiter.start()
    waiter.join(THREAD_GRACE)


def _exit_without_stuck_threads(status: int) -> None:
    """Everything has stopped; a worker thread still inside a blocking library call would hold
    the interpreter's exit for as long as that call takes: exit without waiting for it."""
    stuck = [t.name for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        log.warning("exiting without waiting for worker threads", threads=stuck)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


class StopWatchdog:
    """Exits the process if a stop, once begun, has not finished within ``deadline`` seconds.

    A thread, not a task: it must fire even if the event loop is stuck. Before exiting it logs
    every pending task with the line it waits on, and every thread's stack, so the hang can be
    found and fixed rather than only cut short."""

    def __init__(self, deadline: float = STOP_DEADLINE,
                 exit_: Callable[[int], object] = os._exit) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline = deadline
        self._exit = exit_
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm(self, reason: str) -> None:
        """Start the countdown (once; later calls keep the first deadline). Called in the
        event loop whose tasks the report lists."""
        with self._lock:
            if self._timer is not None:
                return
            self._loop = asyncio.get_running_loop()
            self._timer = threading.Timer(self._deadline, self._overran, args=(reason,))
            self._timer.name = "stop-watchdog"
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _overran(self, reason: str) -> None:
        log.error("stop overran its deadline; exiting without finishing it",
                  deadline_s=self._deadline, stop_reason=reason,
                  tasks=pending_tasks(self._loop) if self._loop else [],
                  threads=thread_stacks())
        logging.shutdown()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        self._exit(EXIT_STOP_OVERRAN)


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Each unfinished task of ``loop`` with the innermost line it waits on (safe to call from
    another thread: a set changing under it is read again)."""
    for _ in range(5):
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            break
        except RuntimeError:  # the loop's task set changed while being read
            continue
    else:
        return ["(tasks changing too fast to list)"]
    return sorted(f"{t.get_name()}: {_awaiting(t.get_coro())}" for t in tasks)


def _awaiting(coro: object) -> str:
    """Where a suspended coroutine chain waits, outermost first: ``function (file:line) > ...``
    down to the innermost await."""
    chain: list[str] = []
    for _ in range(100):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) \
            or getattr(coro, "gi_frame", None)
        if isinstance(frame, types.FrameType):
            chain.append(_where(frame))
        inner = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) \
            or getattr(coro, "gi_yieldfrom", None)
        if inner is None:
            break
        coro = inner
    return " > ".join(chain[-6:]) or "?"


def _where(frame: types.FrameType) -> str:
    path = Path(frame.f_code.co_filename)
    return f"{frame.f_code.co_name} ({path.parent.name}/{path.name}:{frame.f_lineno})"


def thread_stacks() -> dict[str, str]:
    """The innermost few frames of every thread, innermost first, by thread name."""
    names = {t.ident: t.name for t in threading.enumerate()}
    stacks = {}
    for ident, frame in sys._current_frames().items():
        lines: list[str] = []
        current: types.FrameType | None = frame
        while current is not None and len(lines) < 4:
            lines.append(_where(current))
            current = current.f_back
        stacks[names.get(ident, str(ident))] = " < ".join(lines)
    return stacks


async def _with_signals(main: Main, settings: Settings, watchdog: StopWatchdog) -> None:
    stop = asyncio.Event()
    crashed: list[str] = []
    loop = asyncio.get_running_loop()

    def stop_on(reason: str) -> None:
        watchdog.arm(reason)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_on, sig.name)

    def crash(name: str, error: BaseException) -> None:
        crashed.append(f"{name} ({type(error).__name__}: {error})")
        if isinstance(error, bus.NatsAccessError):
            refused.append(error)
        stop_on(f"crash of {name}")

    refused: list[bus.NatsAccessError] = []
    on_crash(crash)
    try:
        await main(settings, stop)
    except bus.NatsAccessError:
        raise
    except Exception as exc:
        if not crashed:
            raise
        # Stopping after a crash: report anything else that went wrong on the way out too.
        log.error("error while stopping after a crash", error=f"{type(exc).__name__}: {exc}",
                  exc_info=None if getattr(exc, "_slipstream_reported", False) else exc)
    finally:
        on_crash(None)
    if refused:
        raise refused[0]  # NATS refused the service something: a start-up error, readable
    if crashed:
        raise CrashedError(f"stopped: background task {crashed[0]} crashed")


class NatsLink:
    """A NATS client that connects in the background, so HTTP health answers meanwhile.

    The connection task is owned here and cancelled or awaited on :meth:`close`.
    """

    def __init__(self, servers: list[str], service: str, settings: Settings) -> None:
        self._servers = servers
        self._service = service
        self._settings = settings
        self._task: asyncio.Task[Client] | None = None
        self._guard: asyncio.Task[None] | None = None
        self.access = bus.Access(settings.nats.user)
        self.client: Client | None = None
        self.failure: str | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name=f"nats-connect-{self._service}")
        self._task.add_done_callback(self._report)

    def _report(self, task: asyncio.Task[Client]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("nats start-up failed", error=self.failure)
            if isinstance(exc, bus.NatsAccessError):
                crash(f"nats-connect-{self._service}", exc)  # fail fast: it will not get better

    async def _connect(self) -> Client:
        nc = await retry_connect(
            lambda: bus.connect(self._servers, self._service, self._settings.nats,
                                guard=self.access),
            wait=self._settings.nats.reconnect_wait)
        if nc is None:  # unreachable: without a stop event it only returns connected
            raise RuntimeError("NATS connection loop ended without a connection")
        self.client = nc
        await self.access.check(topology.apply(nc.jetstream(),
                                               replicas=self._settings.nats.replicas))
        await self.access.check(nc.flush())
        log.info("nats ready", servers=self._servers)
        self.ready.set()
        self._guard = asyncio.create_task(guard_topology(nc, self._settings),
                                          name=f"topology-guard-{self._service}")
        supervise(self._guard, f"topology-guard-{self._service}", critical=True)
        return nc

    async def close(self) -> None:
        for task in (self._task, self._guard):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.client is not None:
            await bus.close(self.client)


async def guard_topology(nc: Client, settings: Settings) -> None:
    """Keep the topology in place for as long as the service runs; when the ``sessions``
    bucket had to be re-created, ask the scheduler to rebuild it from the calendar."""
    async def rebuilt(parts: list[str]) -> None:
        if topology.SESSIONS_BUCKET_STREAM in parts:
            await nc.publish(subjects.SCHEDULER_RESYNC, b"sessions bucket re-created")

    await topology.guard(nc.jetstream(), replicas=settings.nats.replicas, on_rebuilt=rebuilt)


async def retry_connect(connect: Callable[[], Awaitable[Client]], *, wait: float = 1.0,
                        stop: asyncio.Event | None = None) -> Client | None:
    """Call ``connect`` until it succeeds (services may start before NATS).

    Returns ``None`` only if ``stop`` is set first. Errors other than "cannot reach a server"
    are bugs or bad credentials and propagate.
    """
    never = asyncio.Event()
    stop = stop or never
    attempt = 0
    while not stop.is_set():
        try:
            return await connect()
        except (OSError, TimeoutError, NoServersError) as exc:
            attempt += 1
            if attempt == 1 or attempt % 30 == 0:
                log.warning("nats not reachable yet, retrying", error=str(exc) or type(exc).__name__,
                            attempt=attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    return None


Work = Callable[[NatsBroker, Client, asyncio.Event], Coroutine[Any, Any, None]]


async def run_broker_service(*, service: str, settings: Settings, host: str, port: int,
                             broker: NatsBroker, stop: asyncio.Event,
                             work: Work | None = None, readiness: Readiness | None = None,
                             cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run a FastStream service: health HTTP port, NATS with the topology, handlers, ``work``.

    The health port is bound first, so a port conflict fails before anything else starts and
    ``/readyz`` answers (with the reason) while NATS is still unreachable. On stop: ``work``
    ends, the broker drains (in-flight handlers finish), then ``cleanup`` runs.
    """
    sock = bind(host, port, f"{service}.port")
    readiness = readiness or Readiness()
    holder: list[Client] = []
    nats_checks(readiness, lambda: holder[0] if holder else None)
    app = Litestar(route_handlers=ROUTES, state=State({"readiness": readiness}),
                   openapi_config=None, logging_config=None)
    server = http_server(app, log_level=settings.log_level, graceful=HTTP_GRACE)
    guard = bus.guard_of(broker)
    refused: bus.NatsAccessError | None = None
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve([sock]), name=f"{service}-health")
        try:
            nc = await retry_connect(broker.connect, wait=settings.nats.reconnect_wait,
                                     stop=stop)
            guard.connected = nc is not None
            if nc is not None:
                holder.append(nc)
                await guard.check(topology.apply(nc.jetstream(), replicas=settings.nats.replicas))
                await guard.check(broker.start())
                await guard.check(nc.flush())  # the server has answered every subscription
        except bus.NatsAccessError as exc:
            refused, nc = exc, None
            if holder:
                await _stop_broker(broker, holder[0])
        if nc is not None:
            log.info("service ready", health=f"http://{host}:{port}/readyz")
            worker = tg.create_task(work(broker, nc, stop), name=f"{service}-work") if work else None
            async with background(guard_topology(nc, settings), f"{service}-topology-guard",
                                  critical=True):
                await stop.wait()
            log.info("stopping")
            if worker is not None:
                await worker
            await _stop_broker(broker, nc)  # in-flight handlers finish (bounded), then drain
            if cleanup is not None:
                await cleanup()  # what the handlers used is closed only after they finished
        server.should_exit = True
    if refused is not None:
        raise refused


async def _stop_broker(broker: NatsBroker, nc: Client) -> None:
    """Stop the subscribers, then drain, within bounds; a broker already gone is given up on
    (its drain fails at once while it reconnects, and the connection is closed instead).

    The connection must not be closed before the subscribers stop: FastStream's pull loop
    swallows ``ConnectionClosedError`` and would fetch again at once, forever, without ever
    yielding to the event loop."""
    try:
        async with asyncio.timeout(bus.STOP_GRACE * 2):
            await broker.stop()
    except (TimeoutError, NatsError, ExceptionGroup) as exc:
        log.warning("broker did not stop cleanly; closing its connection",
                    error=f"{type(exc).__name__}: {exc}")
        await bus.close(nc)


async def serve_app(*, service: str, settings: Settings, host: str, port: int,
                    app: Any, stop: asyncio.Event, send_buffer: int | None = None,
                    ws_ping: float = 20.0) -> None:
    """Serve an ASGI app until ``stop``; the port is bound first so conflicts fail fast."""
    sock = bind(host, port, f"{service}.port", send_buffer=send_buffer)
    server = http_server(app, log_level=settings.log_level, ws_ping=ws_ping, graceful=HTTP_GRACE)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve([sock]), name=f"{service}-http")
        log.info("listening", url=f"http://{host}:{port}/")
        await stop.wait()
        log.info("stopping")
        server.should_exit = True


def readiness_for(link: NatsLink) -> Readiness:
    """Readiness checks of a service whose only dependency (so far) is NATS."""
    readiness = Readiness()

    async def started() -> str | None:
        return link.failure

    readiness.add("startup", started)
    nats_checks(readiness, lambda: link.client)
    return readiness
