"""NATS faults against the whole system (real processes): a SIGKILLed NATS restarted on its
store after an outage longer than the client library's default reconnect budget; a publish
whose acknowledgement was lost; two compare-and-set writers on one record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError

from shared import topology
from shared.natsserver import EmbeddedNats
from tests.conftest import free_port
from tests.procs import status, wait_until
from tests.system import System, go_live, healthy, records, stored_events

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: nats-py gives up after 60 attempts by default; with the 0.2 s wait the system uses here, an
#: outage of 12 s exhausts that budget. Slipstream's clients never give up.
OUTAGE = 15.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", port=free_port())
    server.start()
    yield server
    server.stop()


async def _stored(servers: list[str]) -> tuple[set[tuple[str, str | None]], dict[str, bytes]]:
    nc = await nats.connect(servers, connect_timeout=2)
    try:
        js = nc.jetstream()
        events = await stored_events(js)
        kv = await topology.sessions_kv(js)
        values = {key: (await kv.get(key)).value or b"" for key in await kv.keys()}
        return events, values
    finally:
        await nc.close()


def test_nats_killed_for_longer_than_the_reconnect_budget_then_restarted(
        node: EmbeddedNats, tmp_path: Path) -> None:
    system = System(tmp_path / "data", [node.url])
    try:
        system.start("demo", "demo")
        for name in ("scheduler", "extractor", "relay", "gateway"):
            system.start(name, name)
        system.wait_ready()
        wait_until(lambda: healthy(system.servers), 120, "three healthy demo streams")
        events, sessions = asyncio.run(_stored(system.servers))
        streams = records(system.servers)

        node.kill()  # SIGKILL: no goodbye to anyone
        started = time.monotonic()
        for name in ("scheduler", "extractor", "relay", "gateway"):
            wait_until(lambda n=name: status(system.url(n, "/readyz")) == 503, 15,  # type: ignore[misc]
                       f"{name} not ready without NATS")
        while time.monotonic() - started < OUTAGE:
            time.sleep(1)
        for name in ("scheduler", "extractor", "relay", "gateway"):
            assert system.procs[name].popen.poll() is None, f"{name} exited"
            assert status(system.url(name, "/healthz")) == 200
            reason = httpx.get(system.url(name, "/readyz"), timeout=2).json()["checks"]["nats"]
            assert reason == "reconnecting", reason  # still trying (not closed), and saying so

        node.start()  # same port, same store
        system.wait_ready(timeout=30)
        after_events, after_sessions = asyncio.run(_stored(system.servers))
        assert events <= after_events  # every acknowledged event survived
        assert {k: v for k, v in after_sessions.items() if k in sessions} == sessions
        assert set(records(system.servers)) == set(streams)

        # The extractor's durable pull consumers, idle through the outage, get new work at once.
        go_live(system.servers, "2099.outage.race")
        try:
            wait_until(lambda: healthy(system.servers, "2099.outage.race.*"), 60,
                       "streams of a session that went live after the restart")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{system.tails()}") from None
    finally:
        system.stop()


async def test_a_publish_whose_ack_was_lost_is_stored_once(nc: Client) -> None:
    """Publishing again with the same Nats-Msg-Id (what a retry after a lost ack does) is
    acknowledged as a duplicate and stored once."""
    js = nc.jetstream()
    await topology.apply(js)
    subject, headers = "sessions.2026.monaco.race.live", {"Nats-Msg-Id": "2026.monaco.race:live:x"}
    first = await js.publish(subject, b"{}", headers=headers)
    again = await js.publish(subject, b"{}", headers=headers)
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq
    info = await js.stream_info(topology.SESSIONS_STREAM)
    assert info.state.messages == 1


async def test_two_compare_and_set_writers_never_lose_an_update(nc: Client, nats_url: str) -> None:
    """Two connections increment one KV value 100 times each with compare-and-set and retry on
    conflict, as the extractor writes stream records: the result is exactly 200."""
    await topology.apply(nc.jetstream())
    other = await nats.connect(nats_url)
    conflicts = 0

    async def writer(client: Client) -> None:
        nonlocal conflicts
        kv = await topology.streams_kv(client.jetstream())
        for _ in range(100):
            while True:
                entry = await kv.get("2026.monaco.race.counter")
                try:
                    await kv.update("2026.monaco.race.counter",
                                    str(int(entry.value or b"0") + 1).encode(), last=entry.revision)
                    break
                except KeyWrongLastSequenceError:
                    conflicts += 1

    try:
        kv = await topology.streams_kv(nc.jetstream())
        await kv.create("2026.monaco.race.counter", b"0")
        await asyncio.gather(writer(nc), writer(other))
        assert (await kv.get("2026.monaco.race.counter")).value == b"200"
    finally:
        await other.drain()


async def test_nats_killed_mid_publish_loses_no_acked_event_and_stores_retries_once(
        node: EmbeddedNats) -> None:
    """A publisher sends 400 events with message ids, retrying each until it is acknowledged
    (what the scheduler does); NATS is SIGKILLed and restarted on its store in the middle.
    Every acknowledged event is there afterwards, and each event is stored exactly once."""
    nc = await nats.connect(node.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    try:
        js = nc.jetstream(timeout=2)
        await topology.apply(js)
        acked: set[int] = set()

        async def publish_all() -> None:
            for i in range(400):
                while True:
                    try:
                        await js.publish(f"sessions.2026.monaco.race.e{i}", b"{}",
                                         headers={"Nats-Msg-Id": f"event-{i}"})
                        acked.add(i)
                        break
                    except (nats.errors.Error, TimeoutError):
                        # no ack: maybe stored, maybe not; the same id again
                        await asyncio.sleep(0.1)

        publishing = asyncio.create_task(publish_all())
        while len(acked) < 150:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(node.kill)  # SIGKILL in the middle of the stream of publishes
        at_kill = len(acked)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(node.start)
        await asyncio.wait_for(publishing, 120)
        assert at_kill < 400  # the kill came while publishing went on (some timed out and were
        # retried, others waited in the client's reconnect buffer: both must end stored once)

        info = await js.stream_info(topology.SESSIONS_STREAM)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(topology.SESSIONS_STREAM, seq)
            ids.append((msg.headers or {})["Nats-Msg-Id"])
        assert len(ids) == len(set(ids)) == 400  # each exactly once
        assert {f"event-{i}" for i in acked} <= set(ids)
    finally:
        await nc.close()
