"""The JetStream topology against a real nats-server: apply, publish/consume, KV round trips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError

from shared import subjects, topology
from shared.codec import decode, encode
from shared.kv import keys as kv_keys
from shared.sessions import Live, Session, SessionEvent, SessionKind, Upcoming
from shared.streams import Health, StreamRecord

T0 = datetime(2026, 6, 7, 13, 0, tzinfo=UTC)


def session(kind: SessionKind = SessionKind.RACE, event: str = "monaco") -> Session:
    return Session(key=subjects.session_key(2026, event, kind.value), season=2026, round=8,
                   event="Monaco Grand Prix", kind=kind, name=kind.value.title(), start=T0,
                   end=T0 + timedelta(hours=2))


def stream_record(key: str, stream_id: str, health: Health = Health.OK) -> StreamRecord:
    return StreamRecord(id=stream_id, session=key, source_id="demo",
                        upstream_url="http://127.0.0.1:8090/live/master.m3u8",
                        resolved_at=T0, health=health)


async def test_apply_is_idempotent_and_complete(nc: Client) -> None:
    """Applying twice changes nothing and leaves every stream, bucket and consumer in place."""
    js = nc.jetstream()
    before = await js.stream_info(topology.SESSIONS_STREAM)
    await topology.apply(js)
    after = await js.stream_info(topology.SESSIONS_STREAM)
    assert before.config == after.config
    assert await topology.missing(js) == []
    kv = await topology.streams_kv(js)
    status = await kv.status()
    assert status.history == 16


async def test_missing_reports_what_is_absent(nats_url: str) -> None:
    """Before apply, missing() names every part of the topology."""
    client = await nats.connect(nats_url)
    try:
        absent = await topology.missing(client.jetstream())
    finally:
        await client.drain()
    assert "SESSIONS" in absent
    assert topology.STREAMS_BUCKET_STREAM in absent
    assert "SESSIONS/extractor" in absent


async def test_changed_consumer_config_is_brought_up_to_date(nc: Client) -> None:
    """A durable consumer with an older config is updated by apply (drift never persists)."""
    js = nc.jetstream()
    old = topology.CONSUMERS[0]
    await js.delete_consumer(old.stream, old.config.durable_name or "")
    stale = old.config.evolve(ack_wait=30.0, max_deliver=2, backoff=None)
    await js.add_consumer(old.stream, stale)
    assert (await js.consumer_info(old.stream, "extractor")).config.max_deliver == 2
    await topology.apply(js)
    info = await js.consumer_info(old.stream, "extractor")
    assert info.config.max_deliver == old.config.max_deliver
    assert info.config.ack_wait == old.config.ack_wait


async def test_session_events_dedupe_and_reach_the_durable_consumer(nc: Client) -> None:
    """A repeated Nats-Msg-Id is stored once; the extractor consumer gets each event once."""
    js = nc.jetstream()
    event = Upcoming(session=session(), at=T0 - timedelta(minutes=30))
    subject = subjects.session_event(event.session.key, "upcoming")
    msg_id = f"{event.session.key}:upcoming:{T0.isoformat()}"
    first = await js.publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})
    again = await js.publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})
    assert again.duplicate
    assert again.seq == first.seq
    live = Live(session=session(), at=T0)
    await js.publish(subjects.session_event(live.session.key, "live"), encode(live))

    sub = await js.pull_subscribe_bind(topology.EXTRACTOR_CONSUMER, topology.SESSIONS_STREAM)
    msgs = await sub.fetch(10, timeout=2)
    got = [decode(m.data, SessionEvent) for m in msgs]  # type: ignore[arg-type]
    assert got == [event, live]
    for m in msgs:
        await m.ack()
    with pytest.raises(TimeoutError):
        await sub.fetch(1, timeout=0.3)
    # A pull subscription whose last fetch timed out would hold up drain() for 30 s.
    await sub.unsubscribe()


async def test_unacked_job_is_redelivered(nc: Client) -> None:
    """A job not acked (a crashed extractor) comes back, marked as a redelivery."""
    js = nc.jetstream()
    cfg = topology.CONSUMERS[0].config.evolve(ack_wait=0.5, backoff=None,
                                              durable_name="test-redelivery")
    await js.add_consumer(topology.SESSIONS_STREAM, cfg)
    live = Live(session=session(), at=T0)
    await js.publish(subjects.session_event(live.session.key, "live"), encode(live))
    sub = await js.pull_subscribe_bind("test-redelivery", topology.SESSIONS_STREAM)
    (first,) = await sub.fetch(1, timeout=2)
    assert first.metadata.num_delivered == 1
    (second,) = await sub.fetch(1, timeout=3)
    assert second.metadata.num_delivered == 2
    assert second.data == first.data
    await second.ack()
    await sub.unsubscribe()


async def test_stream_records_round_trip_through_kv_with_compare_and_set(nc: Client) -> None:
    """Records go in and out of the streams bucket intact; a stale revision cannot overwrite."""
    kv = await topology.streams_kv(nc.jetstream())
    key = subjects.stream_key("2026.monaco.race", "demo-plain")
    rec = stream_record("2026.monaco.race", "demo-plain", Health.RESOLVING)
    rev1 = await kv.create(key, encode(rec))
    entry = await kv.get(key)
    assert entry.value is not None
    assert decode(entry.value, StreamRecord) == rec
    ok = stream_record("2026.monaco.race", "demo-plain", Health.OK)
    rev2 = await kv.update(key, encode(ok), last=rev1)
    assert rev2 > rev1
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.update(key, encode(rec), last=rev1)
    final = await kv.get(key)
    assert final.value is not None
    assert decode(final.value, StreamRecord).health is Health.OK


async def test_a_watcher_follows_one_session_with_a_wildcard(nc: Client) -> None:
    """Watching <session>.* sees that session's streams and none of another session's."""
    kv = await topology.streams_kv(nc.jetstream())
    race, quali = "2026.monaco.race", "2026.monaco.qualifying"
    await kv.put(subjects.stream_key(race, "a"), encode(stream_record(race, "a")))
    watcher = await kv.watch(subjects.stream_keys(race))
    seen: list[str] = []

    async def collect() -> None:
        async for entry in watcher:
            if entry is None:  # end of the initial values
                await kv.put(subjects.stream_key(quali, "c"), encode(stream_record(quali, "c")))
                await kv.put(subjects.stream_key(race, "b"), encode(stream_record(race, "b")))
                continue
            seen.append(entry.key)
            if len(seen) == 2:
                return

    await asyncio.wait_for(collect(), 5)
    await watcher.stop()
    assert seen == [f"{race}.a", f"{race}.b"]


async def test_keys_are_listed_by_wildcard_on_the_server(nc: Client) -> None:
    """shared.kv.keys honours NATS wildcards (nats-py's own filter matches substrings only)."""
    kv = await topology.streams_kv(nc.jetstream())
    for key in ("2026.monaco.race.a", "2026.monaco.race.b", "2026.monaco.qualifying.a"):
        await kv.put(key, b"{}")
    await kv.delete("2026.monaco.race.b")
    assert await kv_keys(kv, "2026.monaco.race.*") == ["2026.monaco.race.a"]
    assert await kv_keys(kv, "*.monaco.*.a") == ["2026.monaco.race.a", "2026.monaco.qualifying.a"]
    assert await kv_keys(kv, "2027.>") == []


async def test_other_services_follow_streams_on_the_kv_feed(nc: Client) -> None:
    """A plain subscriber on stream_feed() sees records as StreamRecords and removals as DEL."""
    race = "2026.monaco.race"
    got: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()

    async def on(msg: object) -> None:
        m = msg  # nats.aio.msg.Msg
        op = (m.headers or {}).get("KV-Operation", "PUT")  # type: ignore[attr-defined]
        await got.put((m.subject, op, m.data))  # type: ignore[attr-defined]

    sub = await nc.subscribe(subjects.stream_feed(race), cb=on)
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key("2026.monaco.qualifying", "x"), encode(stream_record(race, "x")))
    await kv.put(subjects.stream_key(race, "a"), encode(stream_record(race, "a")))
    await kv.delete(subjects.stream_key(race, "a"))
    put = await asyncio.wait_for(got.get(), 2)
    removed = await asyncio.wait_for(got.get(), 2)
    await sub.unsubscribe()
    assert put[0] == "$KV.streams.2026.monaco.race.a"
    assert put[1] == "PUT"
    assert decode(put[2], StreamRecord).id == "a"
    assert removed[:2] == ("$KV.streams.2026.monaco.race.a", "DEL")
    assert got.empty()
