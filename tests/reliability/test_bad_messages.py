"""Malformed messages against real processes on a real nats-server: garbage and an unknown
event type on SESSIONS, and garbage on subjects that name no session (``sessions.x``,
``jobs.extract.x``), are dead-lettered once with the reason and the consumer that failed, never
redelivered, and the extractor goes on (no crash loop, the next good event is handled); a
garbage value in the streams bucket is skipped by the gateway, which keeps answering."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest
from nats.aio.client import Client

from services.gateway.app import create_app
from shared import subjects, topology
from shared.codec import encode
from shared.jobs import DeadLetter
from shared.natsserver import EmbeddedNats
from shared.sessions import Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import Health, StreamRecord
from tests.conftest import free_port, until_ready
from tests.procs import Proc, base_env, module, status, wait_until

pytestmark = pytest.mark.timeout(120)
RACE = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco GP",
               kind=SessionKind.RACE, name="Race", start=datetime.now(UTC).replace(microsecond=0))


async def test_bad_messages_are_dead_lettered_once_and_the_extractor_goes_on(
        nc: Client, nats_server: EmbeddedNats, tmp_path: Path) -> None:
    js = nc.jetstream()
    await topology.apply(js)
    port = free_port()
    proc = Proc(module("services.extractor"), base_env(
        tmp_path, SLIPSTREAM_NATS_URL=nats_server.url, SLIPSTREAM_EXTRACTOR_PORT=str(port),
        SLIPSTREAM_LOG_FORMAT="json"))
    try:
        await asyncio.to_thread(wait_until, lambda: status(f"http://127.0.0.1:{port}/readyz") == 200,
                                60, "extractor ready")
        subject = subjects.session_event(RACE.key, "live")
        await js.publish(subject, b"\x00\xffnot json at all")
        unknown = json.loads(encode(Live(session=RACE, at=datetime.now(UTC))))
        unknown["phase"] = "exploded"
        await js.publish(subject, json.dumps(unknown).encode())
        # Subjects that name no session: the streams store them, the consumers get them.
        bad_session = await js.publish(f"{subjects.SESSIONS_PREFIX}.x", b"garbage")
        bad_job = await js.publish(f"{subjects.JOBS_PREFIX}.x", b"garbage")
        assert (bad_session.stream, bad_job.stream) == (topology.SESSIONS_STREAM,
                                                        topology.JOBS_STREAM)
        await js.publish(subject, encode(Live(session=RACE, at=datetime.now(UTC))))

        async def letters() -> list[tuple[str, DeadLetter]]:
            info = await js.stream_info(topology.DEADLETTER_STREAM)
            if not info.state.messages:
                return []
            stored = [await js.get_msg(topology.DEADLETTER_STREAM, seq)
                      for seq in range(info.state.first_seq, info.state.last_seq + 1)]
            return [(m.subject or "", msgspec.json.decode(m.data or b"", type=DeadLetter))
                    for m in stored]

        async def settled() -> bool:
            for stream, durable in ((topology.SESSIONS_STREAM, topology.EXTRACTOR_CONSUMER),
                                    (topology.JOBS_STREAM, topology.WORKER_CONSUMER)):
                consumer = await js.consumer_info(stream, durable)
                if consumer.num_pending or consumer.num_ack_pending:
                    return False
            return len(await letters()) == 4

        for _ in range(200):
            if await settled():
                break
            await asyncio.sleep(0.1)
        assert await settled()
        got = await letters()  # in whichever order they were handled (a first try may wait)
        on_session = [letter for _, letter in got if letter.subject == subject]
        assert [letter.error_type for letter in on_session] == ["PayloadError", "PayloadError"]
        assert sorted("exploded" in letter.payload for letter in on_session) == [False, True]
        assert any("not json" in letter.payload for letter in on_session)
        by_subject = {letter.subject: (dl_subject, letter) for dl_subject, letter in got}
        for bad, consumer in ((f"{subjects.SESSIONS_PREFIX}.x", topology.EXTRACTOR_CONSUMER),
                              (f"{subjects.JOBS_PREFIX}.x", topology.WORKER_CONSUMER)):
            dl_subject, letter = by_subject[bad]
            assert letter.consumer == consumer
            assert letter.deliveries == 1  # the first delivery was dead-lettered, not retried
            assert letter.error_type == "PayloadError"
            assert dl_subject == subjects.deadletter(consumer, None)
        assert all(dl_subject.startswith(f"{subjects.DEADLETTER_PREFIX}.") for dl_subject, _ in got)
        # Terminated, not left to come back after the ack wait: still one letter each later on.
        await asyncio.sleep(1.0)
        assert len(await letters()) == 4
        assert await settled()
        assert proc.popen.poll() is None
        assert status(f"http://127.0.0.1:{port}/readyz") == 200
        assert "jobs queued" in proc.output  # the good event after the bad ones
    finally:
        proc.stop(signal.SIGTERM)


async def test_a_garbage_stream_record_is_skipped_by_the_gateway(
        nc: Client, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(RACE.key, "bad"), b'{"id": "bad", "upstream_url": 42}')
    await kv.put(subjects.stream_key(RACE.key, "good"), encode(StreamRecord(
        id="good", session=RACE.key, source_id="good", upstream_url="https://cdn.example.test/a.m3u8",
        resolved_at=datetime.now(UTC), health=Health.OK)))
    base = serve(create_app(load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)}), [nats_url]))
    await until_ready(base)
    async with httpx.AsyncClient(base_url=base) as http:
        got = await http.get("/api/streams")
    assert got.status_code == 200
    assert [v["id"] for v in got.json()] == ["good"]
