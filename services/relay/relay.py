"""The relay's request logic, between the routes and the upstream: authorise, find the stream
and the resource, fetch (shared), rewrite playlists. No web framework here: typed errors out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from services.relay.continuity import Position, Shift, apply, end_of, switch
from services.relay.rewrite import Kind, Mint, PlaylistError, rewrite
from services.relay.upstream import Body, Upstream, UpstreamError
from shared.kvmirror import KvMirror
from shared.relay_urls import RelayTokenError, Signer
from shared.streams import StreamRecord
from shared.subjects import InvalidTokenError, check_session_key, check_token

PLAYLIST_TTL: Final = 1.0
#: LL-HLS blocking playlist reloads may be held by the origin for up to three target durations.
BLOCKING_TIMEOUT: Final = 30.0
BLOCKING_PARAMS: Final = ("_HLS_msn", "_HLS_part", "_HLS_skip")
MAX_REFS: Final = 50_000
DEFAULT_EXT: Final = {Kind.PLAYLIST: ".m3u8", Kind.MEDIA: ".ts", Kind.KEY: ".key", Kind.DATA: ".json"}
CONTENT_TYPES: Final = {
    ".ts": "video/mp2t", ".m4s": "video/iso.segment", ".mp4": "video/mp4", ".m4a": "audio/mp4",
    ".aac": "audio/aac", ".mp3": "audio/mpeg", ".vtt": "text/vtt", ".webvtt": "text/vtt",
    ".key": "application/octet-stream", ".json": "application/json",
}
PLAYLIST_TYPE: Final = "application/vnd.apple.mpegurl"


class RelayError(Exception):
    """A request the relay answers with an error status and a short, safe reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """An authorised request: the stream, its record and the relay URL prefix it came with."""

    key: str
    record: StreamRecord
    prefix: str


@dataclass(frozen=True)
class Served:
    """A response: a playlist text, a body to stream, or a redirect (of one stream)."""

    content_type: str
    text: str | None = None
    body: Body | None = None
    redirect: str | None = None


class Relay:
    """Everything the relay's routes need."""

    def __init__(self, signer: Signer, records: KvMirror[StreamRecord], upstream: Upstream, *,
                 redirect_public: bool = False) -> None:
        self.signer = signer
        self.redirect_public = redirect_public
        self.records = records
        self.upstream = upstream
        self.refs: dict[str, OrderedDict[str, tuple[str, str]]] = {}
        self._paths: dict[str, dict[str, str]] = {}
        #: Playlist ref -> (master URL, position in it), and each master's playlist refs in order.
        self.slots: dict[str, dict[str, tuple[str, int]]] = {}
        self.orders: dict[tuple[str, str], list[str]] = {}
        #: (stream, ref) -> (upstream URL served, its shift, where the served text ended).
        self.continuity: dict[tuple[str, str], tuple[str, Shift, Position]] = {}
        self._rebuilds: dict[str, asyncio.Task[None]] = {}

    def forget(self, key: str) -> None:
        """Drop everything learned about a removed stream, so memory follows the streams that
        exist (a re-created stream is learned again from its playlists)."""
        self.refs.pop(key, None)
        self._paths.pop(key, None)
        self.slots.pop(key, None)
        for pair in [p for p in self.orders if p[0] == key]:
            del self.orders[pair]
        for pair in [p for p in self.continuity if p[0] == key]:
            del self.continuity[pair]

    async def authorise(self, session: str, stream_id: str, token: str) -> Target:
        try:
            check_session_key(session)
            check_token(stream_id)
        except InvalidTokenError as exc:
            raise RelayError(404, "no such stream") from exc
        try:
            self.signer.verify(session, stream_id, token)
        except RelayTokenError as exc:
            raise RelayError(410 if exc.expired else 403,
                             "this link has expired" if exc.expired else "invalid link") from exc
        key = f"{session}.{stream_id}"
        if not self.records.synced.is_set():
            try:
                await asyncio.wait_for(self.records.synced.wait(), 5)
            except TimeoutError as exc:
                raise RelayError(503, "the relay is starting") from exc
        record = self.records.get(key)
        if record is None:
            if key in self.records.gone:
                raise RelayError(410, "this stream has ended")
            raise RelayError(404, "no such stream")
        return Target(key=key, record=record, prefix=f"/s/{session}/{stream_id}/{token}")

    def _minter(self, key: str, prefix: str) -> Mint:
        refs = self.refs.setdefault(key, OrderedDict())
        # A live window repeats most URIs refresh after refresh: remember each one's path.
        paths = self._paths.setdefault(key, {})
        ref_of = self.signer.ref

        def mint(url: str, kind: str) -> str:
            path = paths.get(url)
            if path is None:
                ref = ref_of(url)
                refs[ref] = (url, kind)
                if len(refs) > MAX_REFS:
                    _, (old_url, _) = refs.popitem(last=False)
                    paths.pop(old_url, None)
                ext = _extension(url) if kind == Kind.MEDIA else ""
                path = paths[url] = f"/{kind}/{ref}{ext or DEFAULT_EXT[kind]}"
            return prefix + path

        return mint

    async def playlist(self, target: Target, url: str,
                       blocking: Mapping[str, str] | None = None, *,
                       mint: Mint | None = None) -> Served:
        """A playlist of the stream, rewritten so every URI is a relay URL.

        LL-HLS blocking-reload parameters (``_HLS_msn``, ``_HLS_part``, ``_HLS_skip``) are passed
        upstream, with a longer timeout and no shared cache (each answer depends on them).
        """
        record = target.record
        ttl, timeout = PLAYLIST_TTL, None
        if blocking:
            url = str(httpx.URL(url).copy_merge_params(dict(blocking)))
            ttl, timeout = 0.0, BLOCKING_TIMEOUT
        try:
            got = await self.upstream.playlist(url, record.headers, record.cookies, ttl,
                                               deadline=timeout, stream=target.key)
        except UpstreamError as exc:
            raise RelayError(exc.status, exc.reason) from exc
        try:
            text = rewrite(got.text, str(got.url), mint or self._minter(target.key, target.prefix))
        except PlaylistError as exc:
            self.upstream.forget(url)
            raise RelayError(502, f"upstream sent an unusable playlist: {exc}") from exc
        return Served(content_type=PLAYLIST_TYPE, text=text)

    async def master(self, target: Target) -> Served:
        """The master playlist; remembers which playlist ref holds which slot of it."""
        master_url = target.record.upstream_url
        order: list[str] = []
        mint = self._minter(target.key, target.prefix)

        def recording(url: str, kind: str) -> str:
            path = mint(url, kind)
            if kind == Kind.PLAYLIST:
                order.append(path.rsplit("/", 1)[1].partition(".")[0])
            return path

        served = await self.playlist(target, master_url, mint=recording)
        slots = self.slots.setdefault(target.key, {})
        for index, ref in enumerate(order):
            slots.setdefault(ref, (master_url, index))
        self.orders[(target.key, master_url)] = order
        return served

    async def followed(self, target: Target, ref: str, url: str,
                       blocking: Mapping[str, str] | None) -> Served:
        """A media playlist a viewer follows by ``ref``, kept continuous when the stream's
        upstream changed: same slot of the new master, numbering carried on."""
        slot = self.slots.get(target.key, {}).get(ref)
        if slot is not None and slot[0] != target.record.upstream_url:
            await self.master(target)
            order = self.orders.get((target.key, target.record.upstream_url), [])
            if slot[1] < len(order):
                url = self.refs[target.key][order[slot[1]]][0]
        served = await self.playlist(target, url, blocking)
        if served.text is None or "#EXT-X-STREAM-INF" in served.text:
            return served
        state = self.continuity.get((target.key, ref))
        shift = Shift() if state is None else state[1]
        if state is not None and state[0] != url:
            shift = switch(state[2], served.text)
        text = apply(served.text, shift)
        self.continuity[(target.key, ref)] = (url, shift, end_of(text))
        return Served(content_type=served.content_type, text=text)

    def _ref(self, key: str, ref: str) -> tuple[str, str] | None:
        """The (upstream URL, kind) a stream's ref stands for, if it was minted."""
        refs = self.refs.get(key)
        return None if refs is None else refs.get(ref)

    async def resource(self, target: Target, kind: str, name: str,
                       blocking: Mapping[str, str] | None = None) -> Served:
        """A playlist, segment, key, init section or data file the stream's playlists named."""
        ref, _, ext = name.partition(".")
        entry = self._ref(target.key, ref)
        if entry is None:
            await self._rebuild(target)
            entry = self._ref(target.key, ref)
        if entry is None or entry[1] != kind:
            raise RelayError(404, "no such resource in this stream")
        url = entry[0]
        if kind == Kind.PLAYLIST:
            return await self.followed(target, ref, url, blocking)
        content_type = CONTENT_TYPES.get(f".{ext}", "application/octet-stream")
        record = target.record
        if kind == Kind.MEDIA and record.public_segments and self.redirect_public:
            return Served(content_type=content_type, redirect=url)
        body = self.upstream.segment(url, record.headers, record.cookies, target.key)
        await _first_bytes(body)
        return Served(content_type=body.content_type if kind == Kind.DATA else content_type,
                      body=body)

    async def _rebuild(self, target: Target) -> None:
        """Learn the stream's resources by fetching its playlists (a ref minted elsewhere:
        another relay replica, or before a restart). One rebuild at a time per stream."""
        task = self._rebuilds.get(target.key)
        if task is None:
            task = asyncio.create_task(self._walk(target))
            self._rebuilds[target.key] = task
            task.add_done_callback(lambda _: self._rebuilds.pop(target.key, None))
        try:
            await asyncio.shield(task)
        except RelayError:
            return

    async def _walk(self, target: Target) -> None:
        await self.master(target)
        for url, kind in list(self.refs.get(target.key, {}).values()):
            if kind == Kind.PLAYLIST:
                await self.playlist(target, url)


def _extension(url: str) -> str:
    """The media extension of a URL's path (``.ts``), kept so players accept relay URLs."""
    end = len(url)
    for stop in ("?", "#"):
        at = url.find(stop)
        if at != -1:
            end = min(end, at)
    dot = url.rfind(".", 0, end)
    if dot <= url.rfind("/", 0, end) or end - dot > 8:
        return ""
    ext = url[dot:end].lower()
    return ext if ext[1:].isalnum() else ""


async def _first_bytes(body: Body) -> None:
    """Wait for the first chunk (or the end, or an error) so errors get a proper status."""
    while not body.chunks and not body.done and body.error is None:
        body.changed.clear()
        if not body.chunks and not body.done and body.error is None:
            await body.changed.wait()
    if body.error is not None and not body.chunks:
        raise RelayError(body.error.status, body.error.reason)
