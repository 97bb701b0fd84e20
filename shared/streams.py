"""Stream contracts: the private record the relay uses and the public view viewers may see.

The split is the security boundary: :class:`StreamRecord` carries the upstream URL, headers and
cookies and never leaves the back end; :class:`StreamView` is built from it by
:func:`public_view` and carries none of them. No text of the record's health detail passes the
boundary (extractor errors quote URLs, yt-dlp and Chromium messages included): the public
detail is one of the fixed phrases in :data:`PUBLIC_DETAILS`, chosen by what the private detail
says. The title (from the source page) loses anything URL-like and every header value, cookie
value, userinfo, host, query value and fragment of the record.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Annotated, Final
from urllib.parse import parse_qsl, urlsplit

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


class TimeSource(enum.StrEnum):
    """Where a stream's wall-clock time comes from."""

    #: The upstream's own ``EXT-X-PROGRAM-DATE-TIME``, kept as it is.
    ORIGIN = "origin"
    #: Stamped by Slipstream from when each segment first appeared upstream.
    STAMPED = "stamped"


class StreamClock(msgspec.Struct, frozen=True, kw_only=True):
    """How a stream's segments map onto wall-clock time, and how far behind live it runs.

    The anchor (``sequence``, ``start``, ``period``) is shared data: every relay replica stamps
    segment ``n`` of a playlist without a program date-time as ``start + (n - sequence) *
    period`` (in whole milliseconds), so replicas agree by construction and a segment keeps its
    time across refreshes. The extractor keeps the anchor while its sightings agree with it, so
    it also survives re-resolves to the same upstream numbering. Sequence numbers are those of
    the record's upstream media playlists (its first variant's)."""

    source: TimeSource
    #: Media sequence number of the anchor segment.
    sequence: int
    #: Wall-clock start of the anchor segment.
    start: UtcDateTime
    #: Seconds each later segment starts after the one before (the window's mean duration).
    period: Annotated[float, msgspec.Meta(gt=0)]
    #: The playlist's ``EXT-X-TARGETDURATION``.
    target_duration: float = 0.0
    #: Live-edge delay in seconds: when the newest segment was first seen, minus its
    #: wall-clock end. About 0 for stamped time, by construction.
    delay: float = 0.0
    #: When ``delay`` was measured.
    measured_at: UtcDateTime


class ClockView(msgspec.Struct, frozen=True, kw_only=True):
    """The public part of a stream's clock: its latency and where its time comes from."""

    #: Live-edge delay in seconds (now minus the wall-clock end of the newest segment, when
    #: that segment appeared).
    delay: float
    target_duration: float
    time_source: TimeSource
    measured_at: UtcDateTime


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
    #: Wall-clock time and latency, measured by the extractor (``None`` until measured).
    clock: StreamClock | None = None
    #: The source's ``priority`` (higher first): one input of a channel's choice of stream.
    priority: int = 0


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
    #: Latency and time source (``None`` until measured).
    clock: ClockView | None = None


#: The public health detail when the private one says nothing a rule below recognises.
_BY_HEALTH: Final = {
    Health.RESOLVING: "",
    Health.OK: "live",
    Health.DEGRADED: "the stream has problems",
    Health.DEAD: "the source stopped answering",
}
#: (what the private detail says, the phrase viewers read), first match wins. Extractor errors
#: name their extractor and quote the source's answer ("http: ...: HTTP 503; ytdlp: ...").
_RULES: Final = tuple((re.compile(pattern, re.IGNORECASE), phrase) for pattern, phrase in (
    (r"^live$", "live"),
    (r"playlist has ended", "the stream has ended"),
    (r"not advancing", "the stream is not advancing"),
    (r"^slow\b", "the source is slow"),
    (r"egress policy", "the source's address is not allowed"),
    (r"\bHTTP (?:Error )?(?:401|403|407|451)\b|forbidden|unauthori[sz]ed",
     "the source refused access"),
    (r"\bHTTP (?:Error )?(?:404|410)\b", "the stream is gone from its source"),
    (r"\bHTTP (?:Error )?429\b|too many requests", "the source is limiting requests"),
    (r"\bHTTP (?:Error )?5\d\d\b", "the source is failing"),
    (r"\bHTTP (?:Error )?\d{3}\b", "the source answered with an error"),
    (r"not an HLS playlist|malformed playlist|no variants|no segments|exceeds|too long",
     "the source serves no playable playlist"),
    (r"timed? ?out|timeout|within \d", "the source did not answer in time"),
    (r"no playlist|no stream|no HLS|returned nothing|no extractor",
     "no stream found on the source page"),
    (r"connect|connection|refused|unreachable|resolv|name or service", "the source is unreachable"),
))
#: Every health detail a viewer can read.
PUBLIC_DETAILS: Final = frozenset({*_BY_HEALTH.values(), *(phrase for _, phrase in _RULES)})
#: Anything URL-like: a scheme, a protocol-relative or bare host with a path, a query string.
_URLISH: Final = re.compile(
    r"[a-z][a-z0-9+.-]*://\S*|//\S+|\S*\?\S*=\S*"
    r"|\b[\w-]+(?:\.[\w-]+)+(?::\d+)?/\S*|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b",
    re.IGNORECASE)
#: Secrets shorter than this are not scrubbed (they would match ordinary words and numbers).
MIN_SECRET: Final = 4


def public_detail(health: Health, detail: str) -> str:
    """The phrase viewers read for a private health ``detail``: one of :data:`PUBLIC_DETAILS`,
    never text of the detail itself."""
    if not detail:
        return ""
    for pattern, phrase in _RULES:
        if pattern.search(detail):
            return phrase
    return _BY_HEALTH[health]


def _url_secrets(url: str) -> Iterable[str]:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return [url]
    found = [url, parts.netloc, parts.query, parts.fragment, host or ""]
    found += [parts.username or "", parts.password or ""]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found += [pair.partition("=")[2] for pair in parts.query.split("&")]  # still encoded
    return found


def record_secrets(record: StreamRecord) -> frozenset[str]:
    """What of a record must never reach a viewer: header and cookie values, and of its URLs the
    userinfo, host, query (and each value in it) and fragment (at least :data:`MIN_SECRET` long)."""
    found = [*record.headers.values(), *record.cookies.values(),
             *_url_secrets(record.upstream_url)]
    for variant in record.variants:
        found += _url_secrets(variant.uri)
    return frozenset(s for s in found if len(s) >= MIN_SECRET)


def remove_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets`` at least :data:`MIN_SECRET` long (each replaced by
    ``***``, until none is left: a replacement may not join two halves into a new one)."""
    ordered = sorted((s for s in secrets if len(s) >= MIN_SECRET), key=len, reverse=True)
    changed = True
    while changed:  # ends: each replacement makes the text shorter
        changed = False
        for secret in ordered:
            if secret in text:
                text, changed = text.replace(secret, "***"), True
    return text


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without anything URL-like and without any of ``secrets``."""
    return remove_secrets(_URLISH.sub("***", text), secrets)


def public_view(record: StreamRecord, *, playback_url: str, revision: int = 0) -> StreamView:
    """Project a private record onto its public view; nothing upstream survives the projection."""
    return StreamView(
        id=record.id,
        session=record.session,
        source=record.source_name or record.source_id,
        title=scrub(record.title, record_secrets(record)),
        health=record.health,
        health_detail=public_detail(record.health, record.health_detail),
        qualities=tuple(
            Quality(bandwidth=v.bandwidth, width=v.width, height=v.height, codecs=v.codecs,
                    frame_rate=v.frame_rate)
            for v in record.variants
        ),
        playback_url=playback_url,
        updated_at=record.resolved_at,
        revision=revision,
        clock=None if record.clock is None else ClockView(
            delay=record.clock.delay, target_duration=record.clock.target_duration,
            time_source=record.clock.source, measured_at=record.clock.measured_at),
    )
