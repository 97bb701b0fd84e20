"""The WebSocket feed's messages (gateway ``/ws``): a snapshot on connect, then changes.

Every message is one JSON object tagged by ``type``. Revisions are KV revisions: a client that
applies a message only when its revision is above what it has seen can never go backwards.
Close codes: ``4003`` origin or token refused (before the handshake completes, as HTTP 403),
``4008`` the client did not keep up (its queue filled), ``1013`` too many connections,
``1012`` the gateway's data was reloaded (a bucket re-created): reconnect for a fresh snapshot.
"""

from __future__ import annotations

from typing import Final

import msgspec

from shared.sessions import SessionStatus
from shared.streams import StreamView
from shared.times import UtcDateTime

CLOSE_TOO_SLOW: Final = 4008
CLOSE_TRY_LATER: Final = 1013
CLOSE_RELOADED: Final = 1012
#: The close frame's reason for each code the gateway sends after accepting.
CLOSE_REASONS: Final = {CLOSE_TOO_SLOW: "client too slow",
                        CLOSE_RELOADED: "data reloaded; reconnect for a fresh snapshot"}


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot"):
    """Everything the client needs to start: sessions and streams (filtered if asked)."""

    sessions: list[SessionStatus]
    streams: list[StreamView]
    revision: int


class StreamChanged(msgspec.Struct, frozen=True, kw_only=True, tag="stream"):
    """A stream was added, updated or changed health."""

    stream: StreamView


class StreamRemoved(msgspec.Struct, frozen=True, kw_only=True, tag="stream_removed"):
    """A stream is gone (its session ended, or its source stopped working for good)."""

    session: str
    id: str
    revision: int


class SessionChanged(msgspec.Struct, frozen=True, kw_only=True, tag="session"):
    """A session changed phase (or was rescheduled)."""

    status: SessionStatus


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    """Sent when nothing else was, so clients and proxies know the link is alive."""

    at: UtcDateTime


FeedMessage = Snapshot | StreamChanged | StreamRemoved | SessionChanged | Heartbeat
