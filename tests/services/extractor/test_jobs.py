"""Extraction jobs on a real nats-server against the demo origin: queue, run, refresh, remove."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError

from services.demo.app import create_app
from services.extractor.jobs import FIRST_CLOCK_AFTER, Jobs
from services.extractor.registry import Context
from services.extractor.worker import MAX_ATTEMPTS
from shared import subjects, topology
from shared.cache import SharedState
from shared.codec import decode, encode
from shared.egress import client
from shared.egress_proxy import EgressProxy
from shared.identity import BROWSER_USER_AGENT
from shared.jobs import ExtractJob
from shared.kv import keys as kv_keys
from shared.sessions import Ended, Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from shared.times import SystemClock
from tests.services.extractor.conftest import Counting, allowing

NOW = datetime.now(UTC).replace(microsecond=0)
SESSION = Session(key=f"{NOW.year}.demo.race", season=NOW.year, round=2, event="Demo GP",
                  kind=SessionKind.RACE, name="Race", start=NOW - timedelta(minutes=5),
                  end=NOW + timedelta(hours=2))


@pytest.fixture
async def jobs(nc: Client, demo: str, tmp_path: object) -> AsyncIterator[Jobs]:
    """Jobs with the demo sources (plain and embedded only: no browser here) and a dead one."""
    settings = load_settings(env={
        "SLIPSTREAM_DATA_DIR": str(tmp_path), "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true",
        "SLIPSTREAM_EXTRACTOR_DEMO_URL": demo, "SLIPSTREAM_EXTRACTOR_PROBE_INTERVAL": "1"})
    policy = allowing(demo)
    js = nc.jetstream()
    async with client(policy) as http, EgressProxy(policy) as proxy:
        def context(source: object) -> Context:
            return Context(client=http, policy=policy, proxy=proxy.url, deadline=10.0)

        j = Jobs(settings, js, streams=await topology.streams_kv(js),
                 sessions=await topology.sessions_kv(js), context=context, clock=SystemClock())
        j.catalog.pop("demo-scripted")  # needs the browser: covered in test_browser
        yield j


async def set_phase(nc: Client, event: Live | Ended) -> None:
    kv = await topology.sessions_kv(nc.jetstream())
    await kv.put(event.session.key, encode(event))


async def test_a_live_session_gets_one_job_per_source_once(jobs: Jobs, nc: Client) -> None:
    """live after upcoming queues nothing more: job ids are per session, source and start."""
    assert await jobs.on_session(Live(session=SESSION, at=NOW)) == 2
    assert await jobs.on_session(Live(session=SESSION, at=NOW)) == 0
    info = await nc.jetstream().stream_info(topology.JOBS_STREAM)
    assert info.state.messages == 2


async def test_a_job_resolves_probes_and_writes_the_record(jobs: Jobs, nc: Client, demo: str) -> None:
    """The embedded demo source ends in the KV: healthy, with its Referer and cookie."""
    await set_phase(nc, Live(session=SESSION, at=NOW))
    decision = await jobs.run(ExtractJob(session=SESSION, source_id="demo-embedded"), attempt=1)
    assert decision.next_run is not None
    assert not decision.stop
    kv = await topology.streams_kv(nc.jetstream())
    entry = await kv.get(subjects.stream_key(SESSION.key, "demo-embedded"))
    assert entry.value is not None
    rec = decode(entry.value, StreamRecord)
    assert rec.health is Health.OK
    assert rec.upstream_url == f"{demo}/secure/master.m3u8"
    assert rec.headers == {"User-Agent": BROWSER_USER_AGENT, "Referer": f"{demo}/embed/player",
                           "Origin": demo}
    assert "demo_session" in rec.cookies
    assert rec.extractor == "http"
    assert len(rec.variants) == 2
    assert rec.priority == 20  # the source's, for channels to weigh
    # Published at once, without a clock; the next run, a second later, measures it.
    assert rec.clock is None
    assert decision.next_run == FIRST_CLOCK_AFTER
    await jobs.run(ExtractJob(session=SESSION, source_id="demo-embedded"), attempt=2)
    timed = await kv.get(entry.key)
    assert timed.value is not None
    assert decode(timed.value, StreamRecord).clock is not None
    # The next run only probes: nothing changed, so no new KV revision.
    await jobs.run(ExtractJob(session=SESSION, source_id="demo-embedded"), attempt=3)
    assert (await kv.get(entry.key)).revision == timed.revision


async def test_ended_sessions_lose_their_streams_and_jobs(jobs: Jobs, nc: Client) -> None:
    """ended removes that session's records (others stay); its job then stops for good."""
    await set_phase(nc, Live(session=SESSION, at=NOW))
    job = ExtractJob(session=SESSION, source_id="demo-plain")
    await jobs.run(job, attempt=1)
    await jobs.run(ExtractJob(session=SESSION, source_id="demo-embedded"), attempt=1)
    kv = await topology.streams_kv(nc.jetstream())
    other = subjects.stream_key(f"{NOW.year}.demo.qualifying", "demo-plain")
    await kv.put(other, (await kv.get(subjects.stream_key(SESSION.key, "demo-plain"))).value or b"")
    assert len(await kv_keys(kv, subjects.stream_keys(SESSION.key))) == 2
    await set_phase(nc, Ended(session=SESSION, at=NOW))
    await jobs.on_session(Ended(session=SESSION, at=NOW))
    assert await kv_keys(kv, subjects.stream_keys(SESSION.key)) == []
    assert await kv_keys(kv) == [other]
    decision = await jobs.run(job, attempt=2)
    assert decision.stop
    with pytest.raises(KeyNotFoundError):
        await kv.get(subjects.stream_key(SESSION.key, "demo-plain"))


async def test_a_failing_origin_goes_degraded_then_dead_then_recovers(jobs: Jobs, nc: Client,
                                                                      demo: str) -> None:
    """A stream whose upstream breaks is dead within two runs and comes back by itself."""
    await set_phase(nc, Live(session=SESSION, at=NOW))
    job = ExtractJob(session=SESSION, source_id="demo-plain")
    await jobs.run(job, attempt=1)
    source = jobs.catalog["demo-plain"]
    jobs.catalog["demo-plain"] = replace(source, url=f"{demo}/pages/missing", extractor="http")
    kv = await topology.streams_kv(nc.jetstream())
    key = subjects.stream_key(SESSION.key, "demo-plain")
    # Break the stream itself: point the record at a playlist that does not exist.
    rec = decode((await kv.get(key)).value or b"", StreamRecord)
    entry = await kv.get(key)
    await kv.update(key, encode(replace(rec, upstream_url=f"{demo}/live/gone/index.m3u8")),
                    last=entry.revision)
    healths = []
    for attempt in (2, 3):
        await jobs.run(job, attempt=attempt)
        healths.append(decode((await kv.get(key)).value or b"", StreamRecord).health)
    assert healths == [Health.DEGRADED, Health.DEAD]
    jobs.catalog["demo-plain"] = source
    await jobs.run(job, attempt=4)
    back = decode((await kv.get(key)).value or b"", StreamRecord)
    assert back.health is Health.OK
    assert back.failures == 0


async def test_a_source_that_never_resolves_ends_in_the_dead_letters(jobs: Jobs, nc: Client,
                                                                    demo: str) -> None:
    """Bounded tries: the last one asks for a dead letter with the reason."""
    await set_phase(nc, Live(session=SESSION, at=NOW))
    jobs.catalog["demo-plain"] = replace(jobs.catalog["demo-plain"], url=f"{demo}/pages/missing",
                                         extractor="http")
    job = ExtractJob(session=SESSION, source_id="demo-plain")
    first = await jobs.run(job, attempt=1)
    assert first.next_run is not None
    last = await jobs.run(job, attempt=MAX_ATTEMPTS)
    assert last.stop
    assert last.dead_letter is not None
    assert "HTTP 404" in last.dead_letter


async def test_replicas_share_extractions_through_redis(nc: Client, redis_url: str,
                                                        serve: Callable[[Any], str],
                                                        tmp_path: Path) -> None:
    """Two replicas, two sessions, one source page: the page is extracted once, via the cache."""
    origin = Counting(create_app())
    demo = serve(origin)
    settings = load_settings(env={
        "SLIPSTREAM_DATA_DIR": str(tmp_path), "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true",
        "SLIPSTREAM_EXTRACTOR_DEMO_URL": demo})
    policy = allowing(demo)
    js = nc.jetstream()
    quali = replace(SESSION, key=f"{NOW.year}.demo.qualifying", kind=SessionKind.QUALIFYING)
    for s in (SESSION, quali):
        await set_phase(nc, Live(session=s, at=NOW))
    async with client(policy) as http:
        replicas = []
        for _ in range(2):
            def context(source: object) -> Context:
                return Context(client=http, policy=policy, deadline=10.0)
            replicas.append(Jobs(settings, js, streams=await topology.streams_kv(js),
                                 sessions=await topology.sessions_kv(js), context=context,
                                 clock=SystemClock(), shared=SharedState(redis_url)))
        await replicas[0].run(ExtractJob(session=SESSION, source_id="demo-embedded"), attempt=1)
        await replicas[1].run(ExtractJob(session=quali, source_id="demo-embedded"), attempt=1)
        for r in replicas:
            await r.shared.close()
    assert origin.hits["/pages/embedded"] == 1
    kv = await topology.streams_kv(js)
    for s in (SESSION, quali):
        rec = decode((await kv.get(subjects.stream_key(s.key, "demo-embedded"))).value or b"",
                     StreamRecord)
        assert rec.health is Health.OK
        assert rec.extractor == "http"
