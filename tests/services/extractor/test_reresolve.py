"""The extractor's answer to a re-resolve request, on a real nats-server in front of the demo
origin: the request queues a one-off job at once, the job resolves the stream afresh and
writes the new record, and the stream's keep-fresh job is left as it was."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from services.extractor.app import ExtractorApp
from shared import subjects, topology
from shared.codec import decode, encode
from shared.control import ReresolveOutcome, ReresolveReply, ReresolveRequest
from shared.jobs import ExtractJob
from shared.sessions import Ended, Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord

pytestmark = pytest.mark.timeout(90)

NOW = datetime.now(UTC).replace(microsecond=0)
SESSION = Session(key=f"{NOW.year}.demo.race", season=NOW.year, round=2, event="Demo GP",
                  kind=SessionKind.RACE, name="Race", start=NOW - timedelta(minutes=5),
                  end=NOW + timedelta(hours=2))
KEY = subjects.stream_key(SESSION.key, "demo-plain")


@pytest.fixture
async def extractor(nc: Client, nats_url: str, demo: str, tmp_path: Path) -> AsyncIterator[ExtractorApp]:
    """The extractor app's broker and work, in this process, with the demo sources."""
    settings = load_settings(env={
        "SLIPSTREAM_DATA_DIR": str(tmp_path), "SLIPSTREAM_EXTRACTOR_DEMO_SOURCES": "true",
        "SLIPSTREAM_EXTRACTOR_DEMO_URL": demo,
        "SLIPSTREAM_EGRESS_ALLOW": demo.removeprefix("http://")})
    await topology.apply(nc.jetstream())
    app = ExtractorApp(settings, [nats_url])
    broker_nc = await app.broker.connect()
    stop = asyncio.Event()
    work = asyncio.create_task(app.work(app.broker, broker_nc, stop))
    while app.jobs is None:
        await asyncio.sleep(0.02)
    await app.broker.start()
    try:
        yield app
    finally:
        stop.set()
        await work
        with contextlib.suppress(Exception):
            await app.broker.stop()
        await app.close()


async def ask(nc: Client, stream: str) -> ReresolveReply:
    msg = await nc.request(subjects.EXTRACTOR_RERESOLVE,
                           encode(ReresolveRequest(stream=stream, status=403)), timeout=5)
    return decode(msg.data, ReresolveReply)


async def test_a_refused_stream_is_re_resolved_now(extractor: ExtractorApp, nc: Client,
                                                   demo: str) -> None:
    """A record whose upstream refuses: the request queues a job at once (accepted), the job
    resolves the source afresh and the record points at a working upstream again."""
    js = nc.jetstream()
    await (await topology.sessions_kv(js)).put(SESSION.key, encode(Live(session=SESSION, at=NOW)))
    streams = await topology.streams_kv(js)
    stale = StreamRecord(id="demo-plain", session=SESSION.key, source_id="demo-plain",
                         upstream_url=f"{demo}/expired/master.m3u8", resolved_at=NOW,
                         health=Health.OK)
    await streams.put(KEY, encode(stale))
    queued: list[ExtractJob] = []

    async def seen(msg: Msg) -> None:
        queued.append(decode(msg.data, ExtractJob))

    sub = await nc.subscribe(subjects.extract_job(SESSION.key, "demo-plain"), cb=seen)
    await nc.flush()
    started = asyncio.get_running_loop().time()
    reply = await ask(nc, KEY)
    assert reply.outcome is ReresolveOutcome.ACCEPTED
    assert asyncio.get_running_loop().time() - started < 1.0
    for _ in range(50):
        if queued:
            break
        await asyncio.sleep(0.02)
    assert queued == [ExtractJob(session=SESSION, source_id="demo-plain", reresolve=True)]
    # A second relay replica asking moments later adds no second job.
    assert (await ask(nc, KEY)).detail == "already queued"
    record = stale
    for _ in range(100):
        entry = await streams.get(KEY)
        record = decode(entry.value or b"", StreamRecord)
        if record.upstream_url != stale.upstream_url:
            break
        await asyncio.sleep(0.1)
    assert record.upstream_url == f"{demo}/live/master.m3u8"
    assert record.health is Health.OK
    await sub.unsubscribe()
    # The one-off job was acked (done), not put back for another run. (A keep-fresh job of the
    # live session may be queued meanwhile: the extractor follows the sources bucket and gives
    # each source's live sessions their jobs.)
    await asyncio.sleep(0.5)
    info = await js.stream_info(topology.JOBS_STREAM)
    left = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(topology.JOBS_STREAM, seq)
        except NotFoundError:
            continue  # acked and removed
        left.append(decode(msg.data or b"", ExtractJob))
    assert [job for job in left if job.reresolve] == []


async def test_unknown_streams_and_sessions_not_on_are_refused(extractor: ExtractorApp,
                                                               nc: Client, demo: str) -> None:
    """No record, a session that ended, or a source that is gone: unknown, and no job."""
    js = nc.jetstream()
    assert (await ask(nc, KEY)).outcome is ReresolveOutcome.UNKNOWN
    streams = await topology.streams_kv(js)
    record = StreamRecord(id="demo-plain", session=SESSION.key, source_id="demo-plain",
                          upstream_url=f"{demo}/live/master.m3u8", resolved_at=NOW)
    await streams.put(KEY, encode(record))
    await (await topology.sessions_kv(js)).put(SESSION.key, encode(Ended(session=SESSION, at=NOW)))
    assert (await ask(nc, KEY)).outcome is ReresolveOutcome.UNKNOWN
    await (await topology.sessions_kv(js)).put(SESSION.key, encode(Live(session=SESSION, at=NOW)))
    gone = subjects.stream_key(SESSION.key, "gone")
    await streams.put(gone, encode(msgspec.structs.replace(record, id="gone", source_id="gone")))
    reply = await ask(nc, gone)
    assert (reply.outcome, reply.detail) == (ReresolveOutcome.UNKNOWN, "its source is gone")
    bad = await nc.request(subjects.EXTRACTOR_RERESOLVE, b'{"stream": "../etc"}', timeout=5)
    assert decode(bad.data, ReresolveReply).outcome is ReresolveOutcome.UNKNOWN
    assert (await js.stream_info(topology.JOBS_STREAM)).state.messages == 0
