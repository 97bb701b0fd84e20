"""FastStream brokers built by shared.bus carry msgspec contracts over a real NATS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from faststream.nats import PullSub

from shared import bus, subjects, topology
from shared.codec import encode
from shared.sessions import Live, Session, SessionKind
from shared.settings import NatsSettings

T0 = datetime(2026, 6, 7, 13, 0, tzinfo=UTC)
SESSION = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco Grand Prix",
                  kind=SessionKind.RACE, name="Race", start=T0)


async def test_a_faststream_handler_receives_a_typed_session_event(nats_url: str) -> None:
    """A handler on the durable consumer gets the msgspec Struct the scheduler published."""
    broker = bus.broker([nats_url], "test", NatsSettings())
    received: asyncio.Queue[Live] = asyncio.Queue()

    @broker.subscriber(subjects.SESSIONS_ALL, stream=topology.SESSIONS_STREAM,
                       durable=topology.EXTRACTOR_CONSUMER, pull_sub=PullSub(batch_size=1, timeout=0.2))
    async def handle(event: Live) -> None:
        await received.put(event)

    nc = await broker.connect()
    await topology.apply(nc.jetstream())
    await broker.start()
    try:
        event = Live(session=SESSION, at=T0)
        await nc.jetstream().publish(subjects.session_event(SESSION.key, "live"), encode(event))
        got = await asyncio.wait_for(received.get(), 5)
    finally:
        await broker.stop()
    assert got == event
    assert isinstance(got, Live)


async def test_clients_are_named_and_reconnect_forever(nats_url: str) -> None:
    """Every connection carries the service's name and never gives up reconnecting."""
    options = bus.connect_options([nats_url], "relay", NatsSettings())
    assert options["name"] == "slipstream-relay"
    assert options["max_reconnect_attempts"] == -1
    nc = await bus.connect([nats_url], "relay", NatsSettings())
    try:
        assert nc.is_connected
        assert nc.options["name"] == "slipstream-relay"
    finally:
        await nc.drain()
