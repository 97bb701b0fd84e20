"""Asking the extractor to re-resolve a stream whose upstream refuses the relay (401, 403, 410):
at once, rather than at the stream's next scheduled run, and at most once per stream per
:data:`INTERVAL` (every viewer of a refused stream meets the refusal; the extractor needs to hear
it once). The request goes over NATS (``control.extractor.reresolve``) in a task owned here, so
no viewer waits for it, and every task still running is cancelled and awaited on :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from nats.aio.client import Client
from nats.errors import Error as NatsError
from prometheus_client import Counter

from shared import logs, subjects
from shared.codec import PayloadError, decode, encode
from shared.control import ReresolveReply, ReresolveRequest
from shared.tasks import supervise

log = logs.get(__name__)

#: Seconds between two re-resolve requests for one stream.
INTERVAL: Final = 10.0
#: Seconds to wait for the extractor's answer.
TIMEOUT: Final = 2.0
#: Streams remembered by the rate limit before old entries are dropped.
MAX_KEYS: Final = 10_000

REQUESTS = Counter("slipstream_relay_reresolve_requests_total",
                   "Re-resolve requests sent to the extractor after an upstream refusal, by answer",
                   ["outcome"])


class RateLimit:
    """One call per key per ``interval`` seconds (pure: the clock is given)."""

    def __init__(self, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        """Whether a call for ``key`` may go now (and, if so, it counts as made)."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        if len(self._last) > MAX_KEYS:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        return True


class Reresolver:
    """Sends the re-resolve requests of one relay process."""

    def __init__(self, client: Callable[[], Client | None], *, interval: float = INTERVAL,
                 timeout: float = TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.timeout = timeout
        self.limit = RateLimit(interval, clock)
        self._tasks: set[asyncio.Task[None]] = set()

    def refused(self, key: str, status: int, reason: str) -> None:
        """A stream's upstream refused the relay: ask for a re-resolve, unless one was asked
        for within the interval."""
        if not self.limit.allow(key):
            return
        task = asyncio.create_task(self._ask(key, status, reason), name=f"reresolve-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        supervise(task, f"reresolve-{key}")  # an unexpected error is logged, not lost

    async def _ask(self, key: str, status: int, reason: str) -> None:
        nc = self.client()
        if nc is None or not nc.is_connected:
            REQUESTS.labels("no_nats").inc()
            log.warning("upstream refused a stream; NATS is down, no re-resolve asked",
                        stream=key, status=status)
            return
        request = ReresolveRequest(stream=key, status=status, reason=reason[:300])
        try:
            msg = await nc.request(subjects.EXTRACTOR_RERESOLVE, encode(request),
                                   timeout=self.timeout)
            reply = decode(msg.data, ReresolveReply)
        except (NatsError, TimeoutError, PayloadError) as exc:
            REQUESTS.labels("failed").inc()
            log.warning("re-resolve request failed", stream=key, status=status,
                        error=str(exc) or type(exc).__name__)
            return
        REQUESTS.labels(reply.outcome.value).inc()
        log.info("upstream refused a stream; re-resolve asked", stream=key, status=status,
                 outcome=reply.outcome.value, detail=reply.detail)

    async def close(self) -> None:
        """Cancel and await the requests still in flight."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
