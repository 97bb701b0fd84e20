"""Upstream fetching for the relay: one fetch per playlist refresh or segment, for all viewers.

Concurrent requests for the same URL share one upstream fetch (single-flight). Playlists are
then cached for a fraction of their target duration. Segment bodies are streamed to every
waiting viewer as their chunks arrive (a shared in-flight body), then cached in memory within a
byte budget, least recently used first out.

Media segments are cleaned on their way in (:class:`services.relay.sniff.Cleaner`): their first
bytes are held back until it is known what they are (at most 64 KiB plus a few packets), and a
cloak in front of an MPEG-TS is dropped, so no viewer, cache or other replica ever sees it.
Viewers' byte ranges and HEAD are then answered from the cleaned body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import msgspec
from prometheus_client import Counter, Histogram

from services.relay.sniff import Cleaner
from shared.cache import SharedState
from shared.egress import EgressDeniedError, EgressPolicy
from shared.fetch import (
    Fetched,
    FetchError,
    FetchTimeoutError,
    TooLargeError,
    fetch,
)
from shared.streamfetch import StreamClient

MAX_PLAYLIST: Final = 4 * 1024 * 1024
MAX_SEGMENT: Final = 64 * 1024 * 1024
SEGMENT_TTL: Final = 120.0

LATENCY = Histogram("slipstream_relay_upstream_seconds",
                    "Upstream latency: a whole playlist, or a segment's first byte", ["kind"],
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
FETCHES = Counter("slipstream_relay_upstream_fetches_total", "Upstream fetches",
                  ["kind", "stream"])
CACHE = Counter("slipstream_relay_cache_total", "Cache lookups", ["kind", "result", "stream"])
BYTES_IN = Counter("slipstream_relay_upstream_bytes_total", "Bytes read from upstream", ["stream"])
CLEANED = Counter("slipstream_relay_cleaned_segments_total",
                  "Segments whose MPEG-TS was cloaked (an image or padding in front), cleaned",
                  ["cloak", "stream"])


class Shared(msgspec.Struct, frozen=True):
    """A fetched body as replicas share it through Redis."""

    url: str
    body: bytes
    content_type: str = ""
    #: What the (cleaned) body was sniffed to be, as an extension (``.ts``); "" if unknown.
    media: str = ""


def _decode(raw: bytes | None) -> Shared | None:
    if raw is None:
        return None
    try:
        return msgspec.msgpack.decode(raw, type=Shared)
    except msgspec.DecodeError:
        return None  # not ours, or damaged: fetch instead


def _shared_key(kind: str, url: str) -> str:
    return f"relay:{kind}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"


class UpstreamError(Exception):
    """Upstream failed; ``status`` is the HTTP status the relay answers with (502 or 504),
    ``upstream_status`` the one the upstream answered with, if it answered."""

    def __init__(self, reason: str, status: int = 502, upstream_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.upstream_status = upstream_status


@dataclass
class Body:
    """A segment body, complete or still arriving; readers get chunks as they come."""

    content_type: str = "application/octet-stream"
    #: What a cleaned body was sniffed to be (``.ts``), known before its first chunk.
    media: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    done: bool = False
    error: UpstreamError | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Whatever a server builds once per cached body to send it (the edge's response heads,
    #: by Content-Type), kept with the body so it goes when the body leaves the cache.
    heads: dict[str, object] = field(default_factory=dict)

    async def complete(self) -> bytes:
        """The whole body, once it has all arrived (for ranges and HEAD)."""
        async for _ in self.read():
            pass
        return b"".join(self.chunks)

    async def read(self) -> AsyncIterator[bytes]:
        # The list as it is now: a reader that started while the body arrived keeps reading
        # the list it started on when :meth:`seal` puts the whole body in a new one.
        chunks = self.chunks
        index = 0
        while True:
            if index < len(chunks):
                yield chunks[index]
                index += 1
                continue
            if self.error is not None:
                raise self.error
            if self.done:
                return
            # set() wakes every waiting reader at once; clearing after that cannot un-wake them.
            self.changed.clear()
            if index == len(chunks) and not self.done and self.error is None:
                await self.changed.wait()

    def seal(self) -> None:
        """Once the body has all arrived: keep it as one ``bytes`` (one join per cached body,
        not one per viewer), so a hit is answered with a single write and a known length."""
        if self.done and len(self.chunks) > 1:
            self.chunks = [b"".join(self.chunks)]


#: Told (stream, seconds the whole download took, its error or ``None``) after each segment
#: fetched from the upstream (not from a cache or another replica): what channels measure.
SegmentHook = Callable[[str, float, UpstreamError | None], None]


class Upstream:
    """The relay's upstream side: one pooled, egress-guarded client and the shared caches."""

    def __init__(self, client: httpx.AsyncClient, policy: EgressPolicy, *,
                 cache_bytes: int = 256 * 1024 * 1024, timeout: float = 10.0,
                 shared: SharedState | None = None) -> None:
        self.client = client
        self.shared = shared
        self.policy = policy
        self.timeout = timeout
        self.cache_bytes = cache_bytes
        self._playlists: dict[str, tuple[float, Fetched]] = {}
        self._playlist_flights: dict[str, asyncio.Task[Fetched]] = {}
        self._segments: OrderedDict[str, tuple[float, Body]] = OrderedDict()
        self._segment_bytes = 0
        self._segment_flights: dict[str, tuple[Body, asyncio.Task[None]]] = {}
        self.on_segment: SegmentHook | None = None
        self._hit_counters: dict[str, tuple[Any, Any]] = {}
        #: Segment bodies stream through aiohttp (made in the event loop, at the first fetch).
        self._streams: StreamClient | None = None

    @property
    def streams(self) -> StreamClient:
        if self._streams is None:
            self._streams = StreamClient(self.policy, connect_timeout=self.timeout,
                                         read_timeout=self.timeout)
        return self._streams

    async def playlist(self, url: str, headers: Mapping[str, str], cookies: Mapping[str, str],
                       ttl: float, *, deadline: float | None = None, stream: str = "") -> Fetched:
        """The playlist at ``url``: cached, in flight, or fetched now."""
        cached = self.cached_playlist(url)
        if cached is not None:
            CACHE.labels("playlist", "hit", stream).inc()
            return cached
        CACHE.labels("playlist", "miss", stream).inc()
        task = self._playlist_flights.get(url)
        if task is None:
            task = asyncio.create_task(self._fetch_playlist(
                url, headers, cookies, ttl, deadline=deadline or self.timeout, stream=stream))
            self._playlist_flights[url] = task
            task.add_done_callback(lambda _: self._playlist_flights.pop(url, None))
        return await asyncio.shield(task)

    async def _fetch_playlist(self, url: str, headers: Mapping[str, str],
                              cookies: Mapping[str, str], ttl: float, *, deadline: float,
                              stream: str) -> Fetched:
        async def from_upstream() -> Shared:
            FETCHES.labels("playlist", stream).inc()
            started = time.monotonic()
            try:
                got = await fetch(self.client, url, policy=self.policy, headers=headers,
                                  cookies=cookies, max_bytes=MAX_PLAYLIST, deadline=deadline)
            except FetchError as exc:
                raise _error(exc) from exc
            finally:
                LATENCY.labels("playlist").observe(time.monotonic() - started)
            BYTES_IN.labels(stream).inc(len(got.body))
            if not got.body.removeprefix(b"\xef\xbb\xbf").startswith(b"#EXTM3U"):
                # refused before the playlist cache (or other replicas) can keep it
                raise UpstreamError("not an HLS playlist (no #EXTM3U header)")
            return Shared(url=str(got.url), body=got.body)

        if ttl > 0:
            found = await self._across_replicas("playlist", url, ttl, deadline, from_upstream)
        else:
            found = await from_upstream()
        got = Fetched(url=httpx.URL(found.url), status=200, headers=httpx.Headers(),
                      body=found.body, elapsed=0.0)
        if ttl > 0:
            self._playlists[url] = (time.monotonic() + ttl, got)
            if len(self._playlists) > 4096:
                now = time.monotonic()
                self._playlists = {k: v for k, v in self._playlists.items() if v[0] > now}
        return got

    def forget(self, url: str) -> None:
        """Drop a cached playlist (it turned out to be unusable)."""
        self._playlists.pop(url, None)

    def cached_segment(self, url: str) -> Body | None:
        """The whole body of ``url`` if the cache holds it (no side effects: see
        :meth:`hit_segment`)."""
        cached = self._segments.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def hit_segment(self, url: str, stream: str) -> None:
        """A viewer is served ``url`` from the cache: it is used most recently, and counted, and
        its body is one ``bytes`` from now on (joined at the first hit, not when it arrived: a
        segment nobody asks for again is never copied)."""
        self._segments.move_to_end(url)
        self._segments[url][1].seal()
        self._hits(stream)[1].inc()

    def _hits(self, stream: str) -> tuple[Any, Any]:
        """The playlist and segment cache-hit counters of ``stream`` (labelled once)."""
        counters = self._hit_counters.get(stream)
        if counters is None:
            if len(self._hit_counters) > 4096:
                self._hit_counters.clear()
            counters = self._hit_counters[stream] = (CACHE.labels("playlist", "hit", stream),
                                                     CACHE.labels("segment", "hit", stream))
        return counters

    def cached_playlist(self, url: str) -> Fetched | None:
        """The playlist at ``url`` if the cache holds a fresh one (no side effects)."""
        cached = self._playlists.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def hit_playlist(self, stream: str) -> None:
        """A viewer is served a cached playlist: counted."""
        self._hits(stream)[0].inc()

    def segment(self, url: str, headers: Mapping[str, str], cookies: Mapping[str, str],
                stream: str = "", *, clean: bool = False) -> Body:
        """The body of a segment (or key, init section, data): cached, in flight, or started
        now; with ``clean``, sniffed and cleaned of any cloak in front of its MPEG-TS."""
        cached = self.cached_segment(url)
        if cached is not None:
            self.hit_segment(url, stream)
            return cached
        flight = self._segment_flights.get(url)
        if flight is not None:
            CACHE.labels("segment", "shared", stream).inc()
            return flight[0]
        CACHE.labels("segment", "miss", stream).inc()
        body = Body()
        task = asyncio.create_task(self._fill(url, headers, cookies, body, stream=stream,
                                              clean=clean))
        self._segment_flights[url] = (body, task)
        task.add_done_callback(lambda _: self._segment_flights.pop(url, None))
        return body

    async def _fill(self, url: str, headers: Mapping[str, str], cookies: Mapping[str, str],
                    body: Body, *, stream: str, clean: bool) -> None:
        done, claimed = await self._from_replicas(url, body)
        if done:
            return
        FETCHES.labels("segment", stream).inc()
        cleaner = Cleaner() if clean else None
        received = 0
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout * 3):
                started = time.monotonic()
                async with await self.streams.open(self.policy.check_url(url),
                                                   headers=headers, cookies=cookies) as response:
                    LATENCY.labels("segment").observe(time.monotonic() - started)
                    body.content_type = response.headers.get("content-type",
                                                             body.content_type).split(";")[0]
                    async for chunk in response.chunks():
                        received += len(chunk)
                        if received > MAX_SEGMENT:
                            raise TooLargeError(f"body exceeds {MAX_SEGMENT} bytes")
                        self._add(body, chunk if cleaner is None else cleaner.feed(chunk),
                                  cleaner, stream)
                    if cleaner is not None:
                        self._add(body, cleaner.finish(), cleaner, stream)
        except TimeoutError:
            body.error = UpstreamError("upstream did not answer in time", 504)
        except (FetchError, EgressDeniedError, httpx.HTTPError) as exc:
            body.error = _error(exc)
        else:
            body.done = True
            BYTES_IN.labels(stream).inc(received)
            self._store(url, body)
            # Only for other replicas: without Redis this process's cache is the only one.
            if self.shared is not None and self.shared.using_redis:
                await self.shared.set(_shared_key("segment", url), msgspec.msgpack.encode(
                    Shared(url=url, body=b"".join(body.chunks), content_type=body.content_type,
                           media=body.media or "")), SEGMENT_TTL)
        finally:
            body.changed.set()
            if self.on_segment is not None and (body.done or body.error is not None):
                self.on_segment(stream, time.monotonic() - began, body.error)
            if claimed and self.shared is not None:
                await self.shared.release(_shared_key("segment", url))

    @staticmethod
    def _add(body: Body, chunk: bytes, cleaner: Cleaner | None, stream: str) -> None:
        """Pass a (cleaned) chunk on to the body's readers."""
        if not chunk:
            return
        if cleaner is not None and body.media is None and cleaner.sniffed is not None:
            sniffed = cleaner.sniffed
            body.media = sniffed.media
            if sniffed.start:
                CLEANED.labels(sniffed.cloak, stream).inc()
        body.size += len(chunk)
        body.chunks.append(chunk)
        body.changed.set()

    async def _from_replicas(self, url: str, body: Body) -> tuple[bool, bool]:
        """Fill ``body`` from a replica's fetch through Redis if there is (or will be) one.

        Returns (filled, claimed): ``claimed`` means this process is now the one fetching.
        """
        shared = self.shared
        if shared is None or not shared.using_redis:
            return False, False
        key = _shared_key("segment", url)
        until = time.monotonic() + self.timeout * 3
        while time.monotonic() < until:
            found = _decode(await shared.get(key))
            claimed = found is None and await shared.claim(key, self.timeout * 3)
            if claimed:
                # The claimant may have stored it and let go between our read and our claim.
                found = _decode(await shared.get(key))
                if found is None:
                    return False, True
                await shared.release(key)
            if found is not None:
                body.chunks.append(found.body)
                body.size = len(found.body)
                body.content_type = found.content_type or body.content_type
                body.media = found.media or None
                body.done = True
                body.changed.set()
                self._store(url, body)
                return True, False
            await asyncio.sleep(0.03)
        return False, False

    async def _across_replicas(self, kind: str, url: str, ttl: float, deadline: float,
                               fetch_one: Callable[[], Awaitable[Shared]]) -> Shared:
        """One fetch across relay replicas (through Redis): take the value another replica
        stored, or claim the fetch and do it, or wait for the claimant. Without Redis, or when
        it fails, this process simply fetches."""
        shared = self.shared
        if shared is None or not shared.using_redis:
            return await fetch_one()
        key = _shared_key(kind, url)
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            found = _decode(await shared.get(key))
            if found is not None:
                return found
            if await shared.claim(key, deadline):
                try:
                    # Stored and released between our read and our claim? Then use it.
                    found = _decode(await shared.get(key))
                    if found is not None:
                        return found
                    value = await fetch_one()
                    await shared.set(key, msgspec.msgpack.encode(value), max(ttl, 0.001))
                    return value
                finally:
                    await shared.release(key)
            await asyncio.sleep(0.03)
        return await fetch_one()

    def _store(self, url: str, body: Body) -> None:
        self._segments[url] = (time.monotonic() + SEGMENT_TTL, body)
        self._segment_bytes += body.size
        while self._segment_bytes > self.cache_bytes and self._segments:
            _, (_, old) = self._segments.popitem(last=False)
            self._segment_bytes -= old.size

    async def close(self) -> None:
        for _, filling in list(self._segment_flights.values()):
            filling.cancel()
        for fetching in list(self._playlist_flights.values()):
            fetching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(t for _, t in self._segment_flights.values()),
                                 *self._playlist_flights.values(), return_exceptions=True)
        if self._streams is not None:
            await self._streams.close()


def _error(exc: Exception) -> UpstreamError:
    """504 when a time cap fired (the upstream is slow), 502 for anything else."""
    timeout = isinstance(exc, FetchTimeoutError | httpx.TimeoutException)
    reason = exc.reason if isinstance(exc, FetchError) else f"{type(exc).__name__}: {exc}"
    return UpstreamError(f"upstream: {reason}", 504 if timeout else 502,
                         exc.status if isinstance(exc, FetchError) else None)
