"""App factory of the scheduler: its FastStream broker, calendar source and the scheduler loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from faststream.nats import NatsBroker
from nats.aio.client import Client

from services.scheduler.planner import Timing
from services.scheduler.scheduler import Scheduler
from services.scheduler.sources import CalendarSource, FastF1Source, FileSource, LastGood
from shared import bus, subjects, topology
from shared.calendar import last_good_path
from shared.health import Readiness
from shared.kvmirror import KvMirror
from shared.public import Announcer, announcing, session_event
from shared.sessions import SessionEvent
from shared.settings import Settings
from shared.tasks import background
from shared.times import Clock, SystemClock

SERVICE = "scheduler"
DESCRIPTION = (
    "The scheduler: reads the F1 calendar and publishes each session's life cycle "
    "on SESSIONS."
)


def calendar_source(settings: Settings) -> CalendarSource:
    """The calendar file when one is configured, else FastF1 (cache in the data folder)."""
    if settings.scheduler.calendar:
        return FileSource(Path(settings.scheduler.calendar).expanduser())
    return FastF1Source(settings.data_path / "fastf1")


async def create_scheduler(settings: Settings, nc: Client, clock: Clock | None = None) -> Scheduler:
    """A scheduler on an open connection (the topology must be applied)."""
    js = nc.jetstream()
    s = settings.scheduler
    return Scheduler(
        js, await topology.sessions_kv(js), calendar_source(settings),
        LastGood(last_good_path(settings.data_path)), clock or SystemClock(),
        timing=Timing(lead=timedelta(seconds=s.lead_time), grace=timedelta(seconds=s.grace)),
        durations={k: timedelta(seconds=v) for k, v in s.durations.items()},
        season=s.season, resync_every=timedelta(seconds=s.resync_interval))


class SchedulerApp:
    """The scheduler service: broker with its control handler, readiness, and the loop."""

    def __init__(self, settings: Settings, servers: list[str]) -> None:
        self.settings = settings
        self.scheduler: Scheduler | None = None
        self.broker = bus.broker(servers, SERVICE, settings.nats, description=DESCRIPTION)
        self.readiness = Readiness()
        self.readiness.add("calendar", self._calendar_check)
        self.readiness.warnings.append(self.warnings)
        self.broker.subscriber(
            subjects.SCHEDULER_RESYNC,
            description="Ask the scheduler to re-read the calendar now (any body)",
        )(self.on_resync)

    async def on_resync(self) -> str:
        """Re-read the calendar now (request/reply on ``control.scheduler.resync``)."""
        if self.scheduler is None:
            return "starting"
        self.scheduler.resync_requested.set()
        return "resync requested"

    async def _calendar_check(self) -> str | None:
        sched = self.scheduler
        if sched is None:
            return "not loaded yet"
        if sched.calendar is None:
            return f"no calendar: {sched.calendar_error}"
        return None

    def warnings(self) -> dict[str, str]:
        sched = self.scheduler
        if sched is not None and sched.calendar is not None and sched.calendar_error:
            return {"calendar": f"source failing, last good calendar in force: "
                                f"{sched.calendar_error}"}
        return {}

    async def work(self, _: NatsBroker, nc: Client, stop: asyncio.Event) -> None:
        """The scheduler loop, started once NATS and the topology are ready."""
        self.scheduler = await create_scheduler(self.settings, nc)
        await self.scheduler.start()
        lost = self.scheduler.state_lost

        # Every change of the bucket is announced as a public session event.
        announcer = Announcer[SessionEvent](nc.jetstream(), session_event)

        def changed(key: str, event: SessionEvent | None, revision: int) -> None:
            if event is None:  # the scheduler never removes a session: someone else did
                lost.set()
            announcer.on_change(key, event, revision)

        # Our own bucket, watched: a key deleted or purged, or the bucket emptied or re-created
        # behind our back, is recorded again at once rather than at the next daily resync.
        watch = KvMirror[SessionEvent](SessionEvent, on_change=changed)
        following = watch.follow_forever(nc.jetstream(), topology.SESSIONS_BUCKET,
                                         on_reset=lost.set)
        async with background(following, "sessions-watch", critical=True), \
                announcing(announcer, "public-session-events"):
            await self.scheduler.run(stop)

