"""The WebSocket feed's fan-out: each change is encoded once and queued for every client whose
filter it matches. Each client has a bounded queue: one that does not read fills it and is cut
off (close code 4008) while everyone else's latency stays flat; nobody waits for a slow client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import msgspec
from prometheus_client import Gauge

from shared.feed import SessionChanged, StreamChanged, StreamRemoved
from shared.sessions import SessionEvent, status_of
from shared.streams import StreamView

QUEUE: Final = 256
MAX_CLIENTS: Final = 20_000

CLIENTS = Gauge("slipstream_gateway_ws_clients", "Connected WebSocket clients")
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class FeedClient:
    """One connected client: what it follows and what is waiting to be sent to it."""

    session: str | None = None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, session: str) -> bool:
        return self.session is None or self.session == session


class Hub:
    """The set of connected clients and the fan-out of changes to them."""

    def __init__(self) -> None:
        self.clients: set[FeedClient] = set()

    def join(self, session: str | None) -> FeedClient | None:
        if len(self.clients) >= MAX_CLIENTS:
            return None
        client = FeedClient(session=session)
        self.clients.add(client)
        CLIENTS.set(len(self.clients))
        return client

    def leave(self, client: FeedClient) -> None:
        self.clients.discard(client)
        CLIENTS.set(len(self.clients))

    def publish(self, session: str, message: object) -> None:
        data = _encoder.encode(message)
        for client in self.clients:
            if client.wants(session) and not client.overflowed.is_set():
                try:
                    client.queue.put_nowait(data)
                except asyncio.QueueFull:
                    client.overflowed.set()

    def stream_changed(self, view: StreamView | None, session: str, stream_id: str,
                       revision: int) -> None:
        if view is None:
            self.publish(session, StreamRemoved(session=session, id=stream_id, revision=revision))
        else:
            self.publish(session, StreamChanged(stream=view))

    def session_changed(self, event: SessionEvent, revision: int) -> None:
        self.publish(event.session.key, SessionChanged(status=status_of(event, revision)))


def stream_key_parts(key: str) -> tuple[str, str]:
    """``2026.monaco.race.demo-plain`` -> (``2026.monaco.race``, ``demo-plain``)."""
    session, _, stream_id = key.rpartition(".")
    return session, stream_id
