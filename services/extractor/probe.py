"""Probing a stream before publishing it: is it an HLS playlist, what variants, is it live?

The master playlist is fetched with the headers and cookies the stream needs, parsed with the
``m3u8`` library (in a worker thread: a hostile playlist must not stall the event loop), and the
first variant's media playlist is read to see that the stream is live. Comparing with the
previous probe tells whether it is advancing. Health: ok, degraded (slow, ended, not advancing)
or dead (unreachable, not a playlist, empty).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import m3u8

from shared.egress import EgressPolicy
from shared.fetch import FetchError, fetch
from shared.streams import Health, Variant

MAX_PLAYLIST: Final = 1024 * 1024
SLOW_MS: Final = 3000.0


class ProbeError(Exception):
    """The URL is not a usable HLS playlist; ``reason`` says why, readably."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProbeResult:
    """What a probe saw."""

    url: str
    variants: tuple[Variant, ...]
    live: bool
    media_sequence: int
    target_duration: float
    segments: int
    latency_ms: float
    health: Health
    detail: str
    at: float


def _looks_like(body: bytes) -> str:
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "an HTML page"
    if head.startswith((b"{", b"[")):
        return "JSON"
    if b"\0" in head:
        return "binary data"
    return "text that is not a playlist"


def _parse(text: str, uri: str) -> Any:
    try:
        return m3u8.loads(text, uri=uri)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # m3u8 raises several types on mangled input, not only ValueError.
        raise ProbeError(f"malformed playlist ({type(exc).__name__})") from exc


async def _playlist(client: httpx.AsyncClient, policy: EgressPolicy, url: str, *,
                    headers: Mapping[str, str], cookies: Mapping[str, str],
                    deadline: float) -> tuple[Any, str]:
    try:
        got = await fetch(client, url, policy=policy, headers=headers, cookies=cookies,
                          max_bytes=MAX_PLAYLIST, deadline=deadline)
    except FetchError as exc:
        raise ProbeError(exc.reason) from exc
    body = got.body.removeprefix(b"\xef\xbb\xbf")
    if not body.lstrip().startswith(b"#EXTM3U"):
        raise ProbeError(f"not an HLS playlist: the answer is {_looks_like(body)}")
    final = str(got.url)
    return await asyncio.to_thread(_parse, body.decode("utf-8", errors="replace"), final), final


def _variants(master: Any) -> tuple[Variant, ...]:
    out = []
    for p in master.playlists:
        info = p.stream_info
        width, height = (info.resolution or (None, None))
        audio = next((m.group_id for m in p.media if m.type == "AUDIO"), "") if p.media else ""
        out.append(Variant(uri=p.absolute_uri, bandwidth=int(info.bandwidth or 0), width=width,
                           height=height, codecs=info.codecs or "", frame_rate=info.frame_rate,
                           audio=audio or ""))
    return tuple(out)


async def probe(client: httpx.AsyncClient, policy: EgressPolicy, url: str, *,
                headers: Mapping[str, str] | None = None, cookies: Mapping[str, str] | None = None,
                previous: ProbeResult | None = None, deadline: float = 10.0) -> ProbeResult:
    """Probe ``url``; raise :class:`ProbeError` if it is not a usable playlist."""
    headers = headers or {}
    cookies = cookies or {}
    started = time.monotonic()
    top, final = await _playlist(client, policy, url, headers=headers, cookies=cookies,
                                 deadline=deadline)
    latency = (time.monotonic() - started) * 1000
    variants: tuple[Variant, ...] = ()
    media = top
    if top.is_variant:
        variants = _variants(top)
        if not variants:
            raise ProbeError("master playlist lists no variants")
        media, _ = await _playlist(client, policy, variants[0].uri, headers=headers,
                                   cookies=cookies, deadline=deadline)
    segments = len(media.segments)
    sequence = int(media.media_sequence or 0)
    target = float(media.target_duration or 0)
    live = not media.is_endlist
    now = time.monotonic()
    health, detail = Health.OK, "live"
    if segments == 0:
        health, detail = Health.DEAD, "the playlist has no segments"
    elif not live:
        health, detail = Health.DEGRADED, "not live: the playlist has ended"
    elif previous is not None and sequence <= previous.media_sequence and previous.live \
            and now - previous.at > 2 * max(target, 1.0):
        health, detail = Health.DEGRADED, f"not advancing since {now - previous.at:.0f} s"
    elif latency > SLOW_MS:
        health, detail = Health.DEGRADED, f"slow: {latency:.0f} ms for the playlist"
    return ProbeResult(url=final, variants=variants, live=live, media_sequence=sequence,
                       target_duration=target, segments=segments, latency_ms=round(latency, 1),
                       health=health, detail=detail, at=now)
