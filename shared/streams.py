"""Stream contracts: the private record the relay uses and the public view viewers may see.

The split is the security boundary: :class:`StreamRecord` carries the upstream URL, headers and
cookies and never leaves the back end; :class:`StreamView` is built from it by
:func:`public_view` and carries none of them.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from shared.sessions import SessionKey
from shared.subjects import TOKEN_PATTERN
from shared.times import UtcDateTime

StreamId = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN)]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=4096)]


class Health(enum.StrEnum):
    """How playable a stream is, from the last probe."""

    RESOLVING = "resolving"
    OK = "ok"
    DEGRADED = "degraded"
    DEAD = "dead"


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """One variant of a master playlist, as probed (private: ``uri`` is upstream)."""

    uri: str
    bandwidth: int = 0
    width: int | None = None
    height: int | None = None
    codecs: str = ""
    frame_rate: float | None = None
    audio: str = ""


class Quality(msgspec.Struct, frozen=True, kw_only=True):
    """The public description of a variant: what a viewer can choose between."""

    bandwidth: int = 0
    width: int | None = None
    height: int | None = None
    codecs: str = ""
    frame_rate: float | None = None

    @property
    def label(self) -> str:
        """``720p`` style label, or the bitrate when the height is unknown."""
        return f"{self.height}p" if self.height else f"{self.bandwidth // 1000} kb/s"


class StreamRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved stream as stored in the KV bucket ``streams`` (private to the back end)."""

    id: StreamId
    session: SessionKey
    source_id: str
    source_name: str = ""
    title: str = ""
    upstream_url: HttpUrl
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    cookies: dict[str, str] = msgspec.field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    extractor: str = ""
    resolved_at: UtcDateTime
    expires_at: UtcDateTime | None = None
    health: Health = Health.RESOLVING
    health_detail: str = ""
    latency_ms: float | None = None
    #: True when segments need no credentials, so the relay may redirect instead of proxying.
    public_segments: bool = False
    #: Consecutive failed probes or resolutions (0 when healthy).
    failures: int = 0


class StreamView(msgspec.Struct, frozen=True, kw_only=True):
    """What viewers, the REST API and the WebSocket feed see of a stream."""

    id: StreamId
    session: SessionKey
    source: str
    title: str
    health: Health
    health_detail: str = ""
    qualities: tuple[Quality, ...] = ()
    playback_url: str
    updated_at: UtcDateTime
    revision: int = 0


def public_view(record: StreamRecord, *, playback_url: str, revision: int = 0) -> StreamView:
    """Project a private record onto its public view; nothing upstream survives the projection."""
    return StreamView(
        id=record.id,
        session=record.session,
        source=record.source_name or record.source_id,
        title=record.title,
        health=record.health,
        health_detail=record.health_detail,
        qualities=tuple(
            Quality(bandwidth=v.bandwidth, width=v.width, height=v.height, codecs=v.codecs,
                    frame_rate=v.frame_rate)
            for v in record.variants
        ),
        playback_url=playback_url,
        updated_at=record.resolved_at,
        revision=revision,
    )
