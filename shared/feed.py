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

from shared.channels import SwitchReason
from shared.sessions import SessionStatus
from shared.streams import StreamId, StreamView
from shared.times import UtcDateTime

CLOSE_TOO_SLOW: Final = 4008
CLOSE_TRY_LATER: Final = 1013
CLOSE_RELOADED: Final = 1012
#: The close frame's reason for each code the gateway sends after accepting.
CLOSE_REASONS: Final = {CLOSE_TOO_SLOW: "client too slow",
                        CLOSE_RELOADED: "data reloaded; reconnect for a fresh snapshot"}


class SessionView(SessionStatus, frozen=True, kw_only=True):
    """A session as viewers see it (feed and REST API): its status and its channel."""

    #: The session's channel: one relay URL that plays its best stream and switches to the
    #: next best when that one fails. ``None`` while the session has no stream.
    channel_url: str | None = None
    #: The stream the channel has on air (``None``: not known yet, or nothing on air) ...
    on_air: StreamId | None = None
    #: ... since when, and why the channel put it on air.
    switched_at: UtcDateTime | None = None
    switch_reason: SwitchReason | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot"):
    """Everything the client needs to start: sessions and streams (filtered if asked)."""

    sessions: list[SessionView]
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

    status: SessionView


class ChannelChanged(msgspec.Struct, frozen=True, kw_only=True, tag="channel"):
    """A session's channel changed: it got or lost its URL (its first stream came, its last
    went), or it put another stream on air. The fields replace those of the session's view."""

    session: str
    channel_url: str | None = None
    on_air: StreamId | None = None
    switched_at: UtcDateTime | None = None
    switch_reason: SwitchReason | None = None


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    """Sent when nothing else was, so clients and proxies know the link is alive."""

    at: UtcDateTime


FeedMessage = (Snapshot | StreamChanged | StreamRemoved | SessionChanged | ChannelChanged
               | Heartbeat)
