"""Whole weekends on a real nats-server, driven by a fake clock (milliseconds, no sleeps)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.scheduler.planner import message_id
from services.scheduler.scheduler import Scheduler
from services.scheduler.sources import FileSource, LastGood
from shared import topology
from shared.codec import decode, encode
from shared.sessions import Ended, Phase, Rescheduled, SessionEvent, phase_of
from tests.conftest import FakeClock
from tests.services.scheduler.calendars import at, two_weekends, write

MIAMI = ["practice-1", "sprint-qualifying", "sprint", "qualifying", "race"]
IMOLA = ["practice-1", "practice-2", "practice-3", "qualifying", "race"]


def walk(key: str) -> list[tuple[str, str]]:
    return [(key, "upcoming"), (key, "live"), (key, "ended")]


async def published(nc: Client) -> list[tuple[str, str, SessionEvent]]:
    """Every event on SESSIONS, in stream order, as (session key, phase, event)."""
    js = nc.jetstream()
    info = await js.stream_info(topology.SESSIONS_STREAM)
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe("sessions.>", stream=topology.SESSIONS_STREAM,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    out: list[tuple[str, str, SessionEvent]] = []
    while len(out) < info.state.messages:
        for msg in await sub.fetch(100, timeout=2):
            event = decode(msg.data, SessionEvent)  # type: ignore[arg-type]
            out.append((event.session.key, phase_of(event).value, event))
            await msg.ack()
    await sub.unsubscribe()
    return out


async def new_scheduler(nc: Client, calendar: Path, clock: FakeClock, data: Path) -> Scheduler:
    js = nc.jetstream()
    s = Scheduler(js, await topology.sessions_kv(js), FileSource(calendar),
                  LastGood(data / "calendar.json"), clock)
    await s.start()
    return s


async def run_until(s: Scheduler, clock: FakeClock, until: datetime) -> None:
    """Tick at every change until ``until``: the fake clock jumps straight to each one."""
    while (nxt := await s.tick()) is not None and nxt <= until:
        clock.current = nxt
    clock.current = until
    await s.tick()


async def test_two_weekends_publish_the_exact_sequence(nc: Client, tmp_path: Path) -> None:
    """A sprint and a normal weekend, with a reschedule and a cancellation between syncs."""
    clock = FakeClock(at(1, 0))
    calendar = write(tmp_path / "calendar.toml", two_weekends())
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    await run_until(s, clock, at(10, 0))
    # Between syncs: the Imola race moves an hour later and FP3 is cancelled.
    write(calendar, two_weekends(race_start=at(17, 14), fp3_cancelled=True))
    await s.sync()
    await run_until(s, clock, at(31, 0))

    miami = [f"2026.miami.{k}" for k in MIAMI]
    imola = [f"2026.imola.{k}" for k in IMOLA]
    expected = [(k, "scheduled") for k in miami + imola]
    for k in miami:
        expected += walk(k)
    expected += [("2026.imola.practice-3", "cancelled"), ("2026.imola.race", "rescheduled")]
    for k in imola:
        if not k.endswith("practice-3"):
            expected += walk(k)
    events = await published(nc)
    assert [(k, p) for k, p, _ in events] == expected
    resched = next(e for _, p, e in events if p == "rescheduled")
    assert isinstance(resched, Rescheduled)
    assert resched.previous_start == at(17, 13)
    assert resched.session.start == at(17, 14)
    live = {k: e for k, p, e in events if p == "live"}
    assert live["2026.imola.race"].at == at(17, 14)
    assert live["2026.miami.sprint"].session.kind.value == "sprint"
    ended = {k: e for k, p, e in events if p == "ended"}
    assert ended["2026.miami.race"].at == at(3, 22, 15)  # two hours plus 15 min grace

    # The sessions KV tells a newcomer the state without any replay.
    kv = await topology.sessions_kv(nc.jetstream())
    entry = await kv.get("2026.imola.practice-3")
    assert entry.value is not None
    assert phase_of(decode(entry.value, SessionEvent)) is Phase.CANCELLED  # type: ignore[arg-type]


async def test_a_restart_at_any_moment_publishes_missed_transitions_once(nc: Client,
                                                                        tmp_path: Path) -> None:
    """Schedulers replaced mid-weekend (state only in NATS) neither skip nor repeat anything."""
    clock = FakeClock(at(1, 0))
    calendar = write(tmp_path / "calendar.toml", two_weekends())
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    await run_until(s, clock, at(1, 17))           # Miami FP1 is live
    clock.current = at(2, 16, 10)                 # down for almost a day: sprint now live
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    await s.tick()
    # Crash between publish and KV record: the event is on the stream, the KV does not know.
    nxt = await s.tick()
    assert nxt is not None
    clock.current = nxt
    due = s.entries
    sprint = next(e.session for e in due if e.session.key == "2026.miami.sprint")
    ghost = Ended(session=sprint, at=nxt)
    await nc.jetstream().publish("sessions.2026.miami.sprint.ended", encode(ghost),
                                 headers={"Nats-Msg-Id": message_id(ghost)})
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    await run_until(s, clock, at(31, 0))

    pairs = [(k, p) for k, p, _ in await published(nc)]
    assert len(pairs) == len(set(pairs)), "an event was published twice"
    for k in [f"2026.miami.{x}" for x in MIAMI] + [f"2026.imola.{x}" for x in IMOLA]:
        assert [p for kk, p in pairs if kk == k] == ["scheduled", "upcoming", "live", "ended"], k


async def test_two_schedulers_side_by_side_never_duplicate(nc: Client, tmp_path: Path) -> None:
    """Two instances ticking the same weekend publish each transition exactly once."""
    clock = FakeClock(at(1, 0))
    calendar = write(tmp_path / "calendar.toml", two_weekends())
    a = await new_scheduler(nc, calendar, clock, tmp_path / "a")
    b = await new_scheduler(nc, calendar, clock, tmp_path / "b")
    while True:
        na = await a.tick()
        nb = await b.tick()
        nxt = min(filter(None, (na, nb)), default=None)
        if nxt is None:
            break
        clock.current = nxt
    pairs = [(k, p) for k, p, _ in await published(nc)]
    assert len(pairs) == 10 * 4
    assert len(set(pairs)) == len(pairs)


async def test_a_failing_source_keeps_the_last_good_calendar(nc: Client, tmp_path: Path) -> None:
    """A calendar file that breaks leaves the last good one in force, and says so."""
    clock = FakeClock(at(1, 0))
    calendar = write(tmp_path / "calendar.toml", two_weekends())
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    calendar.write_text("season = 2026\n[[events]]\nround = 'x'\n")
    await s.sync()
    assert s.calendar_error is not None
    assert "calendar.toml" in s.calendar_error
    assert len(s.entries) == 10
    # A fresh scheduler with a broken source starts from the persisted last good calendar.
    fresh = await new_scheduler(nc, calendar, clock, tmp_path)
    assert len(fresh.entries) == 10
    assert fresh.complete is False


async def test_catching_up_records_only_each_sessions_newest_phase(nc: Client,
                                                                   tmp_path: Path) -> None:
    """A scheduler that starts (or rebuilds lost state) mid-weekend publishes every missed
    transition on the stream, but the KV goes straight to the current phase: a session never
    passes through "scheduled" there on its way to "live" (an extractor job would stop)."""
    clock = FakeClock(at(2, 16, 10))  # Miami sprint live
    calendar = write(tmp_path / "calendar.toml", two_weekends())
    s = await new_scheduler(nc, calendar, clock, tmp_path)
    await s.tick()
    kv = await topology.sessions_kv(nc.jetstream())
    history = [decode(e.value or b"", SessionEvent)  # type: ignore[arg-type]
               for e in await kv.history("2026.miami.sprint")]
    assert [phase_of(e) for e in history] == [Phase.LIVE]
    stream = [p for k, p, _ in await published(nc) if k == "2026.miami.sprint"]
    assert stream == ["scheduled", "upcoming", "live"]
