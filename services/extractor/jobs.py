"""The NATS side of extraction: fan sessions out into jobs, run a job, write the KV record.

``on_session`` turns ``upcoming``/``live`` into one keep-fresh job per matching source on the
``JOBS`` work queue (deterministic message ids: a repeated event adds nothing) and removes a
session's streams when it ends, is cancelled or moves. ``run`` does one run of a job: it reads
the session's phase and the stream record, resolves or probes, and writes the record with
compare-and-set; :mod:`services.extractor.worker` decides what that run means.

``reresolve`` answers the relay's request to re-resolve a stream now (its upstream refused the
relay): it queues a one-off job (``ExtractJob.reresolve``) for that stream's session and source,
which resolves afresh, writes the record and is done, while the keep-fresh job runs on as
scheduled. Its message id is per stream and 10-second window, so relay replicas that all met
the refusal queue one job between them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.extractor import catalog, worker
from services.extractor import clock as timing
from services.extractor.probe import MAX_PLAYLIST, ProbeError, ProbeResult, probe
from services.extractor.registry import Context
from services.extractor.resolve import (
    Attempt,
    CachedFound,
    Resolution,
    ResolveError,
    cache_key,
    expiry_from_url,
    page_url,
    resolve,
    to_record,
)
from services.extractor.worker import Decision
from shared import logs, sources, subjects
from shared.cache import LimitTimeoutError, SharedState
from shared.codec import PayloadError, decode, encode
from shared.control import ReresolveOutcome, ReresolveReply
from shared.fetch import FetchError, fetch
from shared.jobs import ExtractJob
from shared.kv import keys as kv_keys
from shared.sessions import Phase, Session, SessionEvent, phase_of
from shared.settings import Settings, SourceSettings
from shared.sources import SourceStats
from shared.streams import Health, StreamRecord
from shared.times import Clock

log = logs.get(__name__)

STARTS = frozenset({Phase.UPCOMING, Phase.LIVE})
STOPS = frozenset({Phase.ENDED, Phase.CANCELLED, Phase.RESCHEDULED})
#: Seconds from a new stream's first record to the run that measures its clock.
FIRST_CLOCK_AFTER: Final = 1.0
#: Seconds between two measurements of a stream's clock (its live edge watched).
CLOCK_EVERY: Final = 30.0
MAX_WATCHED: Final = 10_000
#: Re-resolve requests for one stream within this many seconds queue one job.
RERESOLVE_WINDOW: Final = 10


def job_id(session: Session, source_id: str, generation: int = 0) -> str:
    """Message id of a job: one per session, source (generation) and start time."""
    start = session.start.isoformat() if session.start else "tbc"
    suffix = f":g{generation}" if generation else ""
    return f"{session.key}:{source_id}:{start}{suffix}"


class Jobs:
    """Extraction jobs of one extractor process."""

    def __init__(self, settings: Settings, js: JetStreamContext, *, streams: KeyValue,
                 sessions: KeyValue, context: Callable[[SourceSettings], Context],
                 clock: Clock, shared: SharedState | None = None) -> None:
        self.settings = settings
        self.js = js
        self.streams = streams
        self.sessions = sessions
        self.context = context
        self.clock = clock
        self.shared = shared or SharedState(None)
        #: Enabled sources by id (the settings' until the ``sources`` bucket is followed).
        self.catalog = catalog.sources(settings)
        #: Generation of each enabled source (see ``shared.sources``).
        self.generations: dict[str, int] = {}
        #: Where resolution outcomes are counted (the ``source-stats`` bucket), if anywhere.
        self.stats: KeyValue | None = None
        self.last_probe: dict[str, ProbeResult] = {}
        #: When each stream's live edge was last watched for its clock (monotonic seconds).
        self._watched: dict[str, float] = {}

    def current(self, source_id: str, generation: int) -> SourceSettings | None:
        """The enabled source a job of ``generation`` works for, or None (gone, disabled, or
        enabled again since: a newer job owns its streams)."""
        source = self.catalog.get(source_id)
        if source is None:
            return None
        if generation and self.generations.get(source_id, 0) not in (0, generation):
            return None
        return source

    def superseded(self, source_id: str, generation: int) -> bool:
        """Whether the source is enabled under a newer generation than the job's."""
        return (source_id in self.catalog and generation != 0
                and self.generations.get(source_id, 0) not in (0, generation))

    async def active_sessions(self) -> list[Session]:
        """Sessions that are upcoming or live now, from the ``sessions`` bucket."""
        found = []
        for key in await kv_keys(self.sessions):
            event = await self.session_event(key)
            if event is not None and phase_of(event) in STARTS:
                found.append(event.session)
        return found

    async def start_source(self, source_id: str) -> int:
        """Queue keep-fresh jobs of a new or re-enabled source for the sessions on now; every
        replica may do it: the message ids make it once. Returns how many were queued."""
        source = self.catalog.get(source_id)
        if source is None:
            return 0
        generation = self.generations.get(source_id, 0)
        queued = 0
        for session in await self.active_sessions():
            if source not in catalog.for_session({source_id: source}, session):
                continue
            job = ExtractJob(session=session, source_id=source_id, generation=generation)
            ack = await self.js.publish(subjects.extract_job(session.key, source_id), encode(job),
                                        headers={"Nats-Msg-Id": job_id(session, source_id,
                                                                       generation)})
            queued += 0 if ack.duplicate else 1
        log.info("source started", source=source_id, queued=queued)
        return queued

    async def stop_source(self, source_id: str) -> int:
        """Remove the streams of a disabled or removed source (its jobs stop at their next
        run). Returns how many were removed."""
        keys = await kv_keys(self.streams, subjects.source_streams(source_id))
        for key in keys:
            with contextlib.suppress(KeyNotFoundError):
                await self.streams.delete(key)
            self.last_probe.pop(key, None)
        log.info("source stopped; its streams removed", source=source_id, streams=len(keys))
        return len(keys)

    async def reresolve_source(self, source_id: str, revision: int) -> int:
        """Queue a one-off re-resolve of each stream of an edited source for the sessions on
        now (once per revision of the source, whichever replica queues it)."""
        source = self.catalog.get(source_id)
        if source is None:
            return 0
        queued = 0
        for session in await self.active_sessions():
            if source not in catalog.for_session({source_id: source}, session):
                continue
            job = ExtractJob(session=session, source_id=source_id, reresolve=True)
            ack = await self.js.publish(
                subjects.extract_job(session.key, source_id), encode(job),
                headers={"Nats-Msg-Id": f"edit:{session.key}:{source_id}:{revision}"})
            queued += 0 if ack.duplicate else 1
        log.info("source edited; re-resolving", source=source_id, queued=queued)
        return queued

    async def on_session(self, event: SessionEvent) -> int:
        """React to a session event; returns how many jobs were queued."""
        phase = phase_of(event)
        session = event.session
        if phase in STARTS:
            queued = 0
            for source in catalog.for_session(self.catalog, session):
                generation = self.generations.get(source.id, 0)
                job = ExtractJob(session=session, source_id=source.id, generation=generation)
                ack = await self.js.publish(subjects.extract_job(session.key, source.id), encode(job),
                                            headers={"Nats-Msg-Id": job_id(session, source.id,
                                                                           generation)})
                queued += 0 if ack.duplicate else 1
            log.info("jobs queued", session=session.key, phase=phase.value, queued=queued)
            return queued
        if phase in STOPS:
            await self.remove_session(session.key)
        return 0

    async def remove_session(self, key: str) -> None:
        """Delete every stream record of a session."""
        keys = await kv_keys(self.streams, subjects.stream_keys(key))
        for k in keys:
            await self.streams.delete(k)
        log.info("session streams removed", session=key, streams=len(keys))

    async def phase(self, key: str) -> Phase | None:
        event = await self.session_event(key)
        return None if event is None else phase_of(event)

    async def session_event(self, key: str) -> SessionEvent | None:
        """The last event of a session, from the ``sessions`` bucket."""
        try:
            entry = await self.sessions.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        try:
            event: SessionEvent = decode(entry.value, SessionEvent)
        except PayloadError:
            return None
        return event

    async def reresolve(self, key: str) -> ReresolveReply:
        """Queue a one-off job that re-resolves the stream ``key`` now."""
        record, _ = await self.record(key)
        if record is None:
            return ReresolveReply(outcome=ReresolveOutcome.UNKNOWN, detail="no such stream")
        source = self.catalog.get(record.source_id)
        if source is None:
            return ReresolveReply(outcome=ReresolveOutcome.UNKNOWN, detail="its source is gone")
        event = await self.session_event(record.session)
        if event is None or worker.should_stop(phase_of(event)):
            return ReresolveReply(outcome=ReresolveOutcome.UNKNOWN, detail="its session is not on")
        session = event.session
        job = ExtractJob(session=session, source_id=source.id, reresolve=True)
        window = int(self.clock.now().timestamp()) // RERESOLVE_WINDOW
        ack = await self.js.publish(subjects.extract_job(session.key, source.id), encode(job),
                                    headers={"Nats-Msg-Id": f"reresolve:{key}:{window}"})
        log.info("re-resolve queued", key=key, duplicate=ack.duplicate)
        return ReresolveReply(outcome=ReresolveOutcome.ACCEPTED,
                              detail="already queued" if ack.duplicate else "queued")

    async def record(self, key: str) -> tuple[StreamRecord | None, int | None]:
        try:
            entry = await self.streams.get(key)
        except KeyNotFoundError:
            return None, None
        if entry.value is None:
            return None, entry.revision
        try:
            return decode(entry.value, StreamRecord), entry.revision
        except PayloadError as exc:
            log.error("unreadable stream record replaced", key=key, error=str(exc))
            return None, entry.revision

    async def run(self, job: ExtractJob, *, attempt: int) -> Decision:
        """One run of a job."""
        session = job.session
        key = subjects.stream_key(session.key, job.source_id)
        if self.superseded(job.source_id, job.generation):
            log.info("job of an older generation of its source stopped", key=key)
            return Decision(stop=True)  # the newer generation's job owns the record
        source = self.current(job.source_id, job.generation)
        if source is not None and source.kinds and session.kind not in source.kinds:
            source = None  # edited to serve other kinds of session: this stream goes
        phase = await self.phase(session.key)
        if phase is None and not worker.is_over(session, self.clock.now(),
                                                self.settings.scheduler.grace):
            # Not in the sessions bucket: lost behind our back (the scheduler rebuilds it), or
            # not recorded yet. The job names its session: keep it going until that is over.
            phase = Phase.LIVE
        record, revision = await self.record(key)
        if source is None or worker.should_stop(phase):
            if record is not None:
                await self.streams.delete(key)
            self.last_probe.pop(key, None)
            return Decision(stop=True)
        now = self.clock.now()
        interval = self.settings.extractor.probe_interval
        if job.reresolve:
            return await self._reresolve_now(record, revision, source=source, session=session,
                                             key=key, now=now)
        try:
            fresh = await self._refresh(record, source, session, key, now)
        except (ResolveError, ProbeError) as exc:
            decision = worker.after_failure(record, attempt=attempt, reason=str(exc), now=now,
                                            probe_interval=interval)
        else:
            decision = worker.after_success(fresh, now, interval)
            if record is None and fresh.clock is None:
                decision = dataclasses.replace(decision, next_run=FIRST_CLOCK_AFTER)
        if self.current(job.source_id, job.generation) != source:
            # The source changed while this run worked: what it found is for the old one.
            log.info("source changed during the run; result dropped", key=key)
            return Decision(next_run=1.0)
        if decision.write is not None and not await self._write(key, record, revision,
                                                                 decision.write):
            return Decision(next_run=1.0)
        log.debug("job run", key=key, attempt=attempt, next_run=decision.next_run,
                  stop=decision.stop)
        return decision

    async def _write(self, key: str, record: StreamRecord | None, revision: int | None,
                     write: StreamRecord) -> bool:
        """Write a run's record if it changed (compare-and-set); False if it changed under us."""
        if not _changed(record, write):
            return True
        try:
            if revision is None:
                await self.streams.create(key, encode(write))
            else:
                await self.streams.update(key, encode(write), last=revision)
        except KeyWrongLastSequenceError:
            log.info("record changed under us; running again", key=key)
            return False
        if record is None or record.health != write.health:
            log.info("stream", key=key, health=write.health.value, extractor=write.extractor,
                     detail=write.health_detail)
        return True

    async def _reresolve_now(self, record: StreamRecord | None, revision: int | None, *,
                             source: SourceSettings, session: Session, key: str,
                             now: datetime) -> Decision:
        """The one run of a re-resolve job: resolve afresh and write the record if it changed.
        A failure writes nothing: the keep-fresh job's probes judge the stream's health."""
        try:
            resolution = await self._resolve(source, page_url(source, session),
                                             self.context(source), fresh=True)
        except (ResolveError, ProbeError) as exc:
            log.warning("re-resolve failed; the keep-fresh job carries on", key=key,
                        error=str(exc)[:300])
            return Decision(stop=True)
        self.last_probe[key] = resolution.probe
        fresh = to_record(resolution, source=source, session=session, now=now)
        if self.catalog.get(source.id) != source:
            log.info("source changed during the re-resolve; result dropped", key=key)
            return Decision(stop=True)
        fresh = await self._timed(fresh, record, self.context(source))
        if _changed(record, fresh):
            try:
                if revision is None:
                    await self.streams.create(key, encode(fresh))
                else:
                    await self.streams.update(key, encode(fresh), last=revision)
            except KeyWrongLastSequenceError:
                log.info("record changed under us; re-resolving again", key=key)
                return Decision(next_run=1.0)
        log.info("stream re-resolved", key=key, extractor=fresh.extractor,
                 changed=record is None or record.upstream_url != fresh.upstream_url)
        return Decision(stop=True)

    async def _resolve(self, source: SourceSettings, url: str, ctx: Context, *,
                       fresh: bool) -> Resolution:
        """Resolve a page: from the shared cache when another run just did it, else the chain
        under the source's concurrency limit (shared by replicas)."""
        key = cache_key(source, url)
        cached = None if fresh else await self.shared.get(key)
        if cached is not None:
            try:
                hit = decode(cached, CachedFound)
                found = hit.found()
                result = await probe(ctx.client, ctx.policy, found.url, headers=found.headers,
                                     cookies=found.cookies, deadline=ctx.deadline)
            except (PayloadError, ProbeError) as exc:
                log.info("cached extraction unusable; resolving", source=source.id, reason=str(exc))
            else:
                if result.health is not Health.DEAD:
                    return Resolution(found=found, extractor=hit.extractor, probe=result)
        started = time.monotonic()
        try:
            async with self.shared.limit(f"source:{source.id}", source.max_concurrent,
                                         wait=ctx.deadline):
                resolution = await resolve(url, source.extractor, ctx)
        except LimitTimeoutError as exc:
            raise ResolveError([Attempt("limit", ok=False, detail=str(exc), elapsed_ms=0)]) from exc
        except ResolveError as exc:
            await self.count(source, ok=False, extractor="", started=started, error=str(exc))
            raise
        await self.count(source, ok=True, extractor=resolution.extractor, started=started)
        expires = resolution.found.expires_at or expiry_from_url(resolution.found.url)
        ttl = source.refresh
        if expires is not None:
            ttl = min(ttl, (expires - self.clock.now()).total_seconds() - 60)
        await self.shared.set(key, encode(CachedFound.of(resolution)), ttl)
        return resolution

    async def count(self, source: SourceSettings, *, ok: bool, extractor: str, started: float,
                    error: str = "") -> None:
        """Count one resolution in the source's statistics (compare-and-set, a few tries:
        replicas count at once; statistics are worth less than the job, so a failure to count
        is logged and forgotten)."""
        if self.stats is None:
            return
        secrets = [*source.headers.values(), *source.cookies.values()]
        text = sources.redact(error, secrets)[:500]
        elapsed = (time.monotonic() - started) * 1000
        for _ in range(5):
            try:
                try:
                    entry = await self.stats.get(source.id)
                    old = decode(entry.value, SourceStats) if entry.value else None
                    revision: int | None = entry.revision
                except KeyNotFoundError:
                    old, revision = None, None
                new = sources.record_attempt(old, source.id, ok=ok, extractor=extractor,
                                             elapsed_ms=elapsed, error=text, at=self.clock.now())
                if revision is None:
                    await self.stats.create(source.id, encode(new))
                else:
                    await self.stats.update(source.id, encode(new), last=revision)
            except KeyWrongLastSequenceError:
                continue
            except (PayloadError, NatsError, TimeoutError) as exc:
                log.warning("source statistics not updated", source=source.id,
                            error=str(exc) or type(exc).__name__)
            return

    async def _timed(self, fresh: StreamRecord, old: StreamRecord | None,
                     ctx: Context) -> StreamRecord:
        """``fresh`` with its clock measured (:mod:`services.extractor.clock`): a sighting of
        its newest segment updates the clock it had; without one, the clock it had stays (when
        its upstream is the same: an anchor is in its upstream's numbering)."""
        kept = old.clock if old is not None and old.upstream_url == fresh.upstream_url else None
        if fresh.health is Health.DEAD:
            return msgspec.structs.replace(fresh, clock=kept)
        # Watching the edge holds a worker for up to 1.5 target durations: a stream with a
        # clock is watched again every CLOCK_EVERY seconds, not at every probe (a bounded rate:
        # with a watch at every probe, 15 streams probed every 5 s filled the four workers).
        key = f"{fresh.session}.{fresh.id}"
        now = time.monotonic()
        if kept is not None and now - self._watched.get(key, -CLOCK_EVERY) < CLOCK_EVERY:
            return msgspec.structs.replace(fresh, clock=kept)
        if len(self._watched) >= MAX_WATCHED:
            self._watched.clear()
        self._watched[key] = now
        url = fresh.variants[0].uri if fresh.variants else fresh.upstream_url

        async def load() -> str:
            got = await fetch(ctx.client, url, policy=ctx.policy, headers=fresh.headers,
                              cookies=fresh.cookies, max_bytes=MAX_PLAYLIST,
                              deadline=ctx.deadline)
            return got.body.decode("utf-8", errors="replace")

        try:
            sighting = await timing.watch_edge(load, limit=min(ctx.deadline, 30.0))
        except (timing.ClockError, FetchError, ValueError) as exc:
            log.info("no clock sighting", stream=fresh.id, session=fresh.session,
                     reason=str(exc)[:200])
            return msgspec.structs.replace(fresh, clock=kept)
        return msgspec.structs.replace(fresh, clock=timing.update(
            old.clock if old is not None else None, sighting))

    async def _refresh(self, record: StreamRecord | None, source: SourceSettings, session: Session,
                       key: str, now: datetime) -> StreamRecord:
        ctx = self.context(source)
        if worker.needs_resolve(record, now):
            resolution = await self._resolve(source, page_url(source, session), ctx,
                                             fresh=record is not None and record.failures > 0)
            self.last_probe[key] = resolution.probe
            fresh = to_record(resolution, source=source, session=session, now=now)
            if record is None:
                # A new stream is published at once; its clock (which watches the live edge
                # for up to 1.5 target durations) is measured by the next run, a second later.
                return fresh
            return await self._timed(fresh, record, ctx)
        if record is None:  # unreachable: needs_resolve() is True without a record
            raise ResolveError([])
        result = await probe(ctx.client, ctx.policy, record.upstream_url, headers=record.headers,
                             cookies=record.cookies, previous=self.last_probe.get(key),
                             deadline=ctx.deadline)
        self.last_probe[key] = result
        if result.health is Health.DEAD:
            raise ProbeError(result.detail)
        return await self._timed(msgspec.structs.replace(
            record, health=result.health, health_detail=result.detail,
            variants=result.variants or record.variants, failures=0,
            latency_ms=result.latency_ms), record, ctx)


def _changed(old: StreamRecord | None, new: StreamRecord) -> bool:
    """Whether a write is worth a KV revision (latency alone changes every probe: it is not;
    the clock only when its anchor moved or its delay by :data:`timing.DELAY_STEP`)."""
    if old is None:
        return True
    return msgspec.structs.replace(new, latency_ms=old.latency_ms,
                                   clock=timing.settled(old.clock, new.clock)) != old
