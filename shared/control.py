"""Control request contracts: one service asking another to do something now (core NATS
request/reply, answered by one member of a queue group).

``control.extractor.reresolve``: the relay, when a stream's upstream refuses it (401, 403 or
410 for a playlist or a segment), asks the extractor to re-resolve that stream at once rather
than at its next scheduled run. The extractor queues a one-off job for the stream's session and
source and answers :class:`ReresolveReply`; viewers ride across on the relay's continuity
splice once the new record is in the KV.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from shared.subjects import STREAM_KEY_PATTERN

StreamKey = Annotated[str, msgspec.Meta(pattern=STREAM_KEY_PATTERN, max_length=210)]


class ReresolveRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Re-resolve one stream now: its upstream refused the relay."""

    #: The stream's key in the ``streams`` bucket: ``2026.monaco.race.demo-plain``.
    stream: StreamKey
    #: The HTTP status the upstream refused with (401, 403, 410); 0 when not from HTTP.
    status: int = 0
    #: Why, in a few words (no URL: it names the upstream).
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""


class ReresolveOutcome(enum.StrEnum):
    """What the extractor did with a re-resolve request."""

    #: A job for the stream is queued to run now (or one was queued moments ago).
    ACCEPTED = "accepted"
    #: No such stream (or its session is not on, or its source is gone): nothing to do.
    UNKNOWN = "unknown"
    #: The extractor is starting or stopping: ask again later.
    UNAVAILABLE = "unavailable"


class ReresolveReply(msgspec.Struct, frozen=True, kw_only=True):
    """The extractor's answer to a :class:`ReresolveRequest`."""

    outcome: ReresolveOutcome
    detail: str = ""
