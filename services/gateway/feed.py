"""The WebSocket feed's fan-out: each change is encoded once and offered to every client whose
filter it matches. Each client has a bounded backlog: one that does not read fills it, or
stalls a single send for ``SEND_STALL`` seconds, and is cut off (close code 4008) while
everyone else's latency stays flat; nobody waits for a slow client.

The per-message path is kept lean because it runs once per client per change (5,000 clients
means 5,000 runs): no task, timer or timeout per message. Heartbeats and stalled sends are
handled by one hub-wide tick instead. A client with nothing waiting is written to at once, in
the fan-out's own loop, when its socket can take the message without waiting (``direct``): as
a bare ``websockets.broadcast`` does, without waking the client's task. Only a client whose
socket is full, or that already has a backlog, is served by its own pump.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import msgspec
from prometheus_client import Counter, Gauge

from shared.feed import (
    CLOSE_RELOADED,
    CLOSE_TOO_SLOW,
    ChannelChanged,
    Heartbeat,
    SessionChanged,
    SessionView,
    StreamChanged,
    StreamRemoved,
)
from shared.streams import StreamView

#: Messages a client may have waiting before it is cut off.
QUEUE: Final = 256
MAX_CLIENTS: Final = 20_000
#: Seconds one send may wait on a client that does not read before it is cut off.
SEND_STALL: Final = 10.0
#: Seconds without a message after which a client gets a heartbeat.
HEARTBEAT: Final = 15.0
TICK: Final = 1.0
#: ``closing`` of a client that went away by itself: its pump ends, nothing is sent to it.
GONE: Final = 1001

CLIENTS = Gauge("slipstream_gateway_ws_clients", "Connected WebSocket clients")
CUT_OFF = Counter("slipstream_gateway_ws_cut_off_total", "WebSocket clients cut off for not reading")
CHANGES = Counter("slipstream_gateway_kv_changes_total", "KV changes received, by bucket",
                  ["bucket"])
SENT = Counter("slipstream_gateway_ws_messages_total", "Messages queued to WebSocket clients")
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class FeedClient:
    """One connected client: what it follows, what waits to be sent to it, and why it must
    stop (``closing``: a close code) once it must."""

    session: str | None = None
    backlog: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: int | None = None
    #: ``time.monotonic()`` when the send in progress started, or None.
    sending_since: float | None = None
    last_sent: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    #: Writes one message at once if the socket takes it without waiting; ``False`` (nothing
    #: written) when it cannot. Set by the connection once its snapshot is sent.
    direct: Callable[[str], bool] | None = None

    def wants(self, session: str) -> bool:
        return self.session is None or self.session == session

    def offer(self, text: str) -> None:
        if self.closing is not None:
            return
        if not self.backlog and self.sending_since is None and self.direct is not None \
                and self.direct(text):
            self.last_sent = time.monotonic()
            return  # written: in order, since nothing was waiting or being sent
        if len(self.backlog) >= QUEUE:
            self.cut(CLOSE_TOO_SLOW)
            return
        self.backlog.append(text)
        self.wake.set()

    def cut(self, code: int) -> None:
        """Stop this client: its pump ends and closes the socket with ``code`` (with
        :data:`GONE`, the client left: its pump only ends)."""
        if self.closing is None:
            self.closing = code
            self.backlog.clear()
            self.wake.set()
            if code == CLOSE_TOO_SLOW:
                CUT_OFF.inc()
            if self.sending_since is not None and self.task is not None:
                self.task.cancel()  # a send stuck on a full socket: the pump catches it

    async def pump(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send the backlog as it fills until the client is cut off or gone (returns) or a send
        fails (raises). Runs in the connection's own task: no task per client beside it and
        its reader."""
        self.task = asyncio.current_task()
        try:
            while self.closing is None:
                if not self.backlog:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                self.sending_since = time.monotonic()
                await send(self.backlog.popleft())
                self.sending_since = None
                self.last_sent = time.monotonic()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closing is None or task is None:
                raise  # a real cancellation (shutdown)
            task.uncancel()  # cut off by the hub while a send was stuck
        finally:
            self.task = None


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

    def publish(self, session: str | None, message: object) -> None:
        """Offer ``message`` to every client following ``session`` (None: to everyone)."""
        text = _encoder.encode(message).decode()
        count = 0
        for client in self.clients:
            if session is None or client.wants(session):
                client.offer(text)
                count += 1
        SENT.inc(count)

    def stream_changed(self, view: StreamView | None, session: str, stream_id: str,
                       revision: int) -> None:
        CHANGES.labels("streams").inc()
        if view is None:
            self.publish(session, StreamRemoved(session=session, id=stream_id, revision=revision))
        else:
            self.publish(session, StreamChanged(stream=view))

    def session_changed(self, view: SessionView) -> None:
        CHANGES.labels("sessions").inc()
        self.publish(view.session.key, SessionChanged(status=view))

    def channel_changed(self, change: ChannelChanged) -> None:
        self.publish(change.session, change)

    def reset(self) -> None:
        """Ask every client to reconnect (close 1012) and start from a fresh snapshot."""
        for client in list(self.clients):
            client.cut(CLOSE_RELOADED)
            self.leave(client)

    def tick(self, now: float) -> None:
        """Cut off clients whose send has been stuck too long; heartbeat the idle ones."""
        heartbeat: str | None = None
        for client in list(self.clients):
            if client.sending_since is not None and now - client.sending_since > SEND_STALL:
                client.cut(CLOSE_TOO_SLOW)
                self.leave(client)
            elif not client.backlog and now - client.last_sent > HEARTBEAT:
                heartbeat = heartbeat or _encoder.encode(Heartbeat(at=datetime.now(UTC))).decode()
                client.last_sent = now
                client.offer(heartbeat)

    async def run(self) -> None:
        """The hub's tick, for as long as the gateway runs."""
        while True:
            await asyncio.sleep(TICK)
            self.tick(time.monotonic())


def stream_key_parts(key: str) -> tuple[str, str]:
    """``2026.monaco.race.demo-plain`` -> (``2026.monaco.race``, ``demo-plain``)."""
    session, _, stream_id = key.rpartition(".")
    return session, stream_id
