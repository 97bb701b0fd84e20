"""The scheduler's loop: keep the calendar, plan what is due, publish it, sleep until the next
change. Time comes from an injected clock; tests call :meth:`Scheduler.tick` with a fake one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.scheduler.planner import Timing, next_change, plan
from services.scheduler.publisher import Publisher, StaleStateError, read_state
from services.scheduler.sources import CalendarSource, LastGood
from shared import logs
from shared.calendar import DEFAULT_DURATIONS, CalendarEntry, CalendarError, CalendarFile, sessions
from shared.sessions import SessionKind
from shared.times import Clock

log = logs.get(__name__)

#: Longest sleep between checks even when nothing is due (clock jumps, suspended machines).
MAX_SLEEP = 60.0
#: Seconds before retrying after NATS refused or did not answer.
RETRY_AFTER = 1.0


class Scheduler:
    """One scheduler instance; any number may run side by side on the same NATS."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, source: CalendarSource,
                 last_good: LastGood, clock: Clock, *, timing: Timing | None = None,
                 durations: dict[SessionKind, timedelta] | None = None,
                 season: int | None = None, resync_every: timedelta = timedelta(days=1)) -> None:
        self.js = js
        self.kv = kv
        self.source = source
        self.last_good = last_good
        self.clock = clock
        self.timing = timing or Timing()
        self.durations = {**DEFAULT_DURATIONS, **(durations or {})}
        self.season = season
        self.resync_every = resync_every
        self.entries: list[CalendarEntry] = []
        self.calendar: CalendarFile | None = None
        self.complete = False
        self.calendar_error: str | None = None
        self.synced_at: datetime | None = None
        self.publisher: Publisher | None = None
        self.resync_requested = asyncio.Event()
        #: Set when session states vanished from the KV behind our back (a key deleted or
        #: purged, the bucket emptied or re-created): they are re-read and recorded again.
        self.state_lost = asyncio.Event()

    async def start(self) -> None:
        """Read the recorded state and the calendar (or the last good one)."""
        self.publisher = Publisher(self.js, self.kv, await read_state(self.kv))
        await self.sync()

    async def sync(self) -> None:
        """Load the calendar from the source; on failure keep the last good one in force."""
        season = self.season or self.clock.now().year
        try:
            calendar = await self.source.load(season)
            entries = sessions(calendar, self.durations)
        except CalendarError as exc:
            self.calendar_error = f"{self.source.name}: {exc}"
            saved = self.last_good.load() if self.calendar is None else None
            if saved is not None:
                self._use(saved.calendar, complete=False)
                log.error("calendar source failed; using the last good calendar",
                          error=self.calendar_error, loaded_at=saved.loaded_at.isoformat())
            else:
                log.error("calendar source failed", error=self.calendar_error,
                          in_force="previous" if self.calendar else "none")
        else:
            self.calendar_error = None
            self.last_good.save(self.source.name, calendar)
            self._use(calendar, complete=True, entries=entries)
            log.info("calendar loaded", source=self.source.name, season=calendar.season,
                     sessions=len(entries))
        self.synced_at = self.clock.now()

    def _use(self, calendar: CalendarFile, *, complete: bool,
             entries: list[CalendarEntry] | None = None) -> None:
        self.calendar = calendar
        self.entries = entries if entries is not None else sessions(calendar, self.durations)
        self.complete = complete

    async def tick(self) -> datetime | None:
        """Publish everything due now; return when the next change is due."""
        if self.publisher is None:
            raise RuntimeError("start() first")
        now = self.clock.now()
        for _ in range(3):
            known = {k: v.event for k, v in self.publisher.state.items()}
            due = plan(self.entries, known, now, self.timing,
                       season=self.calendar.season if self.complete and self.calendar else None)
            # Every due event goes on the stream, but the KV gets only each session's newest:
            # a session caught up on (after a restart, or its state lost) must not pass through
            # "scheduled" in the KV on its way to "live", where a reader (an extractor job)
            # would take it as over.
            newest = {event.session.key: i for i, event in enumerate(due)}
            try:
                for i, event in enumerate(due):
                    await self.publisher.publish(event, record=newest[event.session.key] == i)
                break
            except StaleStateError as exc:
                log.info("state changed under us; re-reading", reason=str(exc))
                self.publisher.state = await read_state(self.kv)
        return next_change(self.entries, now, self.timing)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick, sleep until the next change, a re-sync or ``stop``; forever."""
        while not stop.is_set():
            try:
                next_at = await self.tick()
            except (TimeoutError, NatsError) as exc:
                # NATS is away (the client reconnects by itself): every publish is idempotent,
                # so the next tick simply retries what did not get through.
                log.warning("publishing failed; retrying", error=str(exc) or type(exc).__name__)
                next_at = self.clock.now() + timedelta(seconds=RETRY_AFTER)
            now = self.clock.now()
            resync_at = (self.synced_at or now) + self.resync_every
            wake = min(filter(None, (next_at, resync_at)))
            delay = min(max((wake - now).total_seconds(), 0.0), MAX_SLEEP)
            waiters = {asyncio.ensure_future(stop.wait()),
                       asyncio.ensure_future(self.resync_requested.wait()),
                       asyncio.ensure_future(self.state_lost.wait())}
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await w
            if self.state_lost.is_set():
                self.state_lost.clear()
                log.warning("session states vanished from the KV; recording them again")
                if not await self._reread_state():
                    # The bucket may be missing for a moment (being re-created): try again.
                    await asyncio.sleep(RETRY_AFTER)
                    self.state_lost.set()
            if self.resync_requested.is_set() or self.clock.now() >= resync_at:
                self.resync_requested.clear()
                await self.sync()
                await self._reread_state()

    async def _reread_state(self) -> bool:
        """Take the KV as the truth again (it may have been lost or emptied behind our back):
        what is missing there is published and recorded again on the next tick (the stream's
        dedup keeps SESSIONS free of repeats). ``False`` if it could not be read."""
        if self.publisher is None:
            return True
        try:
            self.publisher.state = await read_state(self.kv)
        except (TimeoutError, NatsError) as exc:
            log.warning("could not re-read session states", error=str(exc) or type(exc).__name__)
            return False
        return True
