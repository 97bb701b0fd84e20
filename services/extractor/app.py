"""App factory of the extractor: FastStream handlers for session events and extraction jobs,
the egress-guarded HTTP client and proxy, and readiness.

Acknowledgement is manual: a session event is acked after its jobs are queued; a job is acked
when it is finished for good (session over), naked with the delay to its next run otherwise,
and terminated after its dead letter is written. Undecodable messages go to the dead letters
at once instead of blocking the queue.

Stopping cancels the job runs in flight (Chromium included) and naks their messages, so another
replica takes them at once; jobs delivered while stopping are naked without being started.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Final

import httpx
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client
from nats.errors import Error as NatsError

from services.extractor.catalog import for_session
from services.extractor.check import check_source
from services.extractor.extractors.browser import CHROMIUM
from services.extractor.follow import SourceFollower, restore_from_events, seed
from services.extractor.jobs import Jobs
from services.extractor.metrics import EVENTS, JOBS
from services.extractor.registry import Context
from services.extractor.resolve import page_url
from services.extractor.worker import Decision
from shared import bus, logs, subjects, topology
from shared.cache import SharedState
from shared.codec import PayloadError, decode, encode
from shared.control import ReresolveOutcome, ReresolveReply, ReresolveRequest
from shared.egress import client, policy_for
from shared.egress_proxy import EgressProxy
from shared.health import Readiness
from shared.identity import BROWSER_USER_AGENT
from shared.jobs import DeadLetter, ExtractJob
from shared.kvmirror import KvMirror
from shared.public import Announcer, announcing, stream_event
from shared.sessions import Session, SessionEvent, SessionKind
from shared.settings import Settings, SourceSettings
from shared.sources import CheckReply, CheckRequest
from shared.streams import StreamRecord
from shared.tasks import background
from shared.times import SystemClock

log = logs.get(__name__)

SERVICE = "extractor"
DESCRIPTION = (
    "The extractor: resolves playable HLS streams for sessions and keeps them "
    "fresh in the streams KV."
)
HEARTBEAT: Final = 10.0
#: The session a check fills a source's URL template with when none is on.
SAMPLE_SESSION: Final = Session(key="2026.sample.race", season=2026, round=1, event="Sample",
                                circuit="sample", country="sample", kind=SessionKind.RACE,
                                name="Race")
WORKERS: Final = 4


class ExtractorApp:
    """The extractor service."""

    def __init__(self, settings: Settings, servers: list[str]) -> None:
        self.settings = settings
        self.policy = policy_for(settings)
        self.broker = bus.broker(servers, SERVICE, settings.nats, description=DESCRIPTION)
        self.readiness = Readiness()
        self.shared = SharedState(settings.redis.url, timeout=settings.redis.timeout)
        if settings.redis.url:
            self.readiness.add("redis", self.shared.check)
        self.jobs: Jobs | None = None
        self.follower: SourceFollower | None = None
        self.readiness.add("sources", self._sources_ready)
        self.stopping = False
        self._runs: set[asyncio.Task[Decision]] = set()
        self.http: httpx.AsyncClient | None = None
        self.proxy: EgressProxy | None = None
        self._resources = contextlib.AsyncExitStack()
        self.broker.subscriber(
            subjects.SESSIONS_ALL, stream=JStream(topology.SESSIONS_STREAM, declare=False),
            durable=topology.EXTRACTOR_CONSUMER, pull_sub=PullSub(batch_size=1, timeout=1.0),
            ack_policy=AckPolicy.MANUAL, description="Session events: queue or remove jobs",
            inbox_prefix=bus.pull_inbox(SERVICE),
        )(self.on_session)
        self.broker.subscriber(
            subjects.EXTRACT_JOBS_ALL, stream=JStream(topology.JOBS_STREAM, declare=False),
            durable=topology.WORKER_CONSUMER, pull_sub=PullSub(batch_size=1, timeout=1.0),
            ack_policy=AckPolicy.MANUAL, max_workers=WORKERS,
            description="Keep-fresh extraction jobs", inbox_prefix=bus.pull_inbox(SERVICE),
        )(self.on_job)
        self.broker.subscriber(
            subjects.EXTRACTOR_RERESOLVE, queue=subjects.EXTRACTOR_QUEUE,
            description="Re-resolve one stream now (the relay asks when its upstream refuses "
            "it: 401, 403, 410): a one-off job for the stream's session and source is queued "
            "at once. One extractor of the queue group 'extractor' answers a ReresolveReply "
            "(accepted, unknown or unavailable)",
        )(self.on_reresolve)
        self.broker.subscriber(
            subjects.EXTRACTOR_CHECK, queue=subjects.EXTRACTOR_QUEUE,
            description="Check one source now (the admin page's and `slipstream sources check "
            "ID`): every extractor of its chain runs on its page (for a session on now, else a "
            "sample one) and one extractor of the queue group answers a CheckReply with every "
            "candidate and its verdict (URL queries and secrets hidden)",
        )(self.on_check)

    async def _sources_ready(self) -> str | None:
        return None if self.jobs is not None else "sources not loaded yet"

    def context(self, source: SourceSettings) -> Context:
        if self.http is None or self.proxy is None:
            raise RuntimeError("extractor not started")
        return Context(client=self.http, policy=self.policy, headers=dict(source.headers),
                       cookies=dict(source.cookies), deadline=self.settings.extractor.deadline,
                       chromium=self.settings.extractor.chromium, proxy=self.proxy.url,
                       user_agent=source.user_agent or BROWSER_USER_AGENT)

    async def _dead_letter(self, msg: NatsMessage, reason: str, error_type: str) -> None:
        """Write the dead letter of ``msg``, under its session's subject, or under the
        ``unparsed`` one when its subject names no session (garbage must never make this
        raise: the message would come back after every ack wait, forever)."""
        raw = msg.raw_message
        meta = raw.metadata
        consumer = meta.consumer or ""  # the durable that got it, from its own ack subject
        letter = DeadLetter(consumer=consumer, subject=raw.subject,
                            stream_sequence=meta.sequence.stream, deliveries=meta.num_delivered,
                            reason=reason[:1000], error_type=error_type,
                            payload=raw.data[:64 * 1024].decode("utf-8", errors="replace"),
                            failed_at=datetime.now(UTC))
        session = subjects.session_of(raw.subject)
        try:
            subject = subjects.deadletter(consumer, session)
        except subjects.InvalidTokenError:  # a consumer the topology does not declare
            subject = subjects.deadletter(SERVICE, session)
        if self.jobs is None:
            raise RuntimeError("extractor not started")
        await self.jobs.js.publish(subject, encode(letter),
                                     headers={"Nats-Msg-Id": f"dl:{raw.subject}:{meta.sequence.stream}"})
        log.error("dead letter", subject=raw.subject, reason=reason)

    async def on_session(self, msg: NatsMessage) -> None:
        """A session event: queue jobs (upcoming, live) or remove streams (ended, ...)."""
        if self.jobs is None:
            await msg.nack(delay=1.0)
            return
        try:
            event: SessionEvent = decode(msg.raw_message.data, SessionEvent)
        except PayloadError as exc:
            await self._dead_letter(msg, str(exc), "PayloadError")
            await msg.reject()
            EVENTS.labels("dead_letter").inc()
            return
        try:
            await self.jobs.on_session(event)
        except (NatsError, TimeoutError) as exc:
            log.warning("session event not handled yet; retrying", error=str(exc))
            await msg.nack(delay=2.0)
            EVENTS.labels("retried").inc()
            return
        await msg.ack()
        EVENTS.labels("handled").inc()

    async def on_job(self, msg: NatsMessage) -> None:
        """One run of a keep-fresh job, with in-progress heartbeats while it works."""
        if self.stopping:
            await self._give_back(msg)
            return
        if self.jobs is None:
            await msg.nack(delay=1.0)
            return
        try:
            job = decode(msg.raw_message.data, ExtractJob)
        except PayloadError as exc:
            await self._dead_letter(msg, str(exc), "PayloadError")
            await msg.reject()
            JOBS.labels("dead_letter").inc()
            return
        async with background(self._heartbeat(msg), "job-heartbeat"):
            run = asyncio.create_task(
                self.jobs.run(job, attempt=msg.raw_message.metadata.num_delivered),
                name=f"job-run-{job.session.key}.{job.source_id}")
            self._runs.add(run)
            try:
                decision = await run
            except (NatsError, TimeoutError) as exc:
                log.warning("job interrupted; retrying", error=str(exc) or type(exc).__name__)
                await msg.nack(delay=2.0)
                JOBS.labels("retried").inc()
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this handler itself is cancelled, not only its run
                log.info("job run cancelled by the stop; back to the queue",
                         session=job.session.key, source=job.source_id)
                await self._give_back(msg)
                return
            finally:
                self._runs.discard(run)
        if decision.dead_letter:
            await self._dead_letter(msg, decision.dead_letter, "ResolveError")
            await msg.reject()
            JOBS.labels("dead_letter").inc()
        elif decision.stop:
            await msg.ack()
            JOBS.labels("done").inc()
        else:
            await msg.nack(delay=decision.next_run or 1.0)
            JOBS.labels("again").inc()

    async def on_reresolve(self, msg: NatsMessage) -> bytes:
        """Queue a one-off job that re-resolves the requested stream now; answers a
        ``ReresolveReply`` (request/reply on ``control.extractor.reresolve``)."""
        try:
            request = decode(msg.raw_message.data, ReresolveRequest)
        except PayloadError as exc:
            return encode(ReresolveReply(outcome=ReresolveOutcome.UNKNOWN, detail=str(exc)[:300]))
        if self.jobs is None or self.stopping:
            return encode(ReresolveReply(outcome=ReresolveOutcome.UNAVAILABLE,
                                         detail="the extractor is starting or stopping"))
        log.info("re-resolve asked", stream=request.stream, status=request.status,
                 reason=request.reason)
        try:
            reply = await self.jobs.reresolve(request.stream)
        except (NatsError, TimeoutError) as exc:
            reply = ReresolveReply(outcome=ReresolveOutcome.UNAVAILABLE,
                                   detail=str(exc) or type(exc).__name__)
        return encode(reply)

    async def on_check(self, msg: NatsMessage) -> bytes:
        """Run the extractor chain on one source now (enabled or not) and answer a
        ``CheckReply`` with every candidate and its verdict."""
        try:
            request = decode(msg.raw_message.data, CheckRequest)
        except PayloadError as exc:
            return encode(CheckReply(source_id="", error=str(exc)[:300]))
        jobs, follower = self.jobs, self.follower
        if jobs is None or follower is None or self.stopping:
            return encode(CheckReply(source_id=request.source_id,
                                     error="the extractor is starting or stopping"))
        record = follower.records.get(request.source_id)
        if record is None:
            return encode(CheckReply(source_id=request.source_id,
                                     error=f"no source {request.source_id!r}"))
        source = record.settings()
        sessions = [s for s in await jobs.active_sessions()
                    if source in for_session({source.id: source}, s)]
        session = sessions[0] if sessions else SAMPLE_SESSION
        log.info("source check asked", source=source.id, session=session.key)
        reply = await check_source(source, page_url(source, session), self.context(source))
        return encode(reply)

    @staticmethod
    async def _give_back(msg: NatsMessage) -> None:
        """Return a job to the queue now, for another replica (or this one after a restart).
        If NATS is already gone the message comes back after its ack wait anyway."""
        with contextlib.suppress(NatsError):
            await msg.nack()
        JOBS.labels("given_back").inc()

    def cancel_runs(self) -> None:
        """Stop: start no new job run and cancel those in flight."""
        self.stopping = True
        for run in self._runs:
            run.cancel()

    @staticmethod
    async def _heartbeat(msg: NatsMessage) -> None:
        """Tell JetStream the job is still being worked on (so it is not redelivered)."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            await msg.in_progress()

    async def work(self, _: NatsBroker, nc: Client, stop: asyncio.Event) -> None:
        """Open the client, proxy and buckets; the handlers use them until :meth:`close`."""
        js = nc.jetstream()
        self.http = await self._resources.enter_async_context(client(self.policy))
        self.proxy = await self._resources.enter_async_context(EgressProxy(self.policy))
        jobs = Jobs(self.settings, js, streams=await topology.streams_kv(js),
                    sessions=await topology.sessions_kv(js), context=self.context,
                    clock=SystemClock(), shared=self.shared)
        jobs.stats = await topology.source_stats_kv(js)
        sources_kv = await topology.sources_kv(js)
        await seed(js, sources_kv, self.settings)
        await restore_from_events(js, sources_kv)
        self.follower = SourceFollower(self.settings, js, sources_kv, jobs)
        # Every change of the streams bucket is announced as a public stream event (replicas
        # announce the same changes; the PUBLIC stream stores each once, by message id).
        announcer = Announcer[StreamRecord](js, stream_event)
        records = KvMirror[StreamRecord](StreamRecord, on_change=announcer.on_change)
        async with background(self.follower.run(), "sources", critical=True), \
                background(records.follow_forever(js, topology.STREAMS_BUCKET),
                           "streams-watch", critical=True), \
                announcing(announcer, "public-stream-events"):
            waits = {asyncio.create_task(self.follower.mirror.synced.wait()),
                     asyncio.create_task(stop.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            if not stop.is_set():
                self.jobs = jobs
                log.info("extractor ready", sources=sorted(jobs.catalog))
                await stop.wait()
            self.cancel_runs()  # first: job runs in flight go back to the queue at once

    async def close(self) -> None:
        """After the broker drained: close the browser, the proxy and the client."""
        self.jobs = None
        await CHROMIUM.shutdown()
        await self._resources.aclose()
        await self.shared.close()
