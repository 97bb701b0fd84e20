"""The relay's request logic, between the routes and the upstream: authorise, find the stream
and the resource, fetch (shared), rewrite playlists. No web framework here: typed errors out.

Each relay URL ends in the extension of what its resource is (decided by the playlist's
structure, see :mod:`services.relay.rewrite`); media segments are sniffed and cleaned as they
arrive (:mod:`services.relay.sniff`) and answered with the Content-Type of what they turned out
to be. When an upstream refuses the relay (401, 403, 410), ``on_refused`` is told the stream, so
the extractor can re-resolve it at once.

A playlist is rewritten once per upstream answer, not once per viewer: the rewritten text keeps
:data:`SLOT` where each viewer's signed URL prefix goes (a :class:`Page`), and a viewer's copy is
one join. The ``*_now`` methods answer from what is cached without waiting for anything, or say
``None``: the relay's edge (:mod:`services.relay.edge`) serves cache hits with them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import islice, repeat
from typing import Final, NamedTuple

import httpx

from services.relay.clock import stamp
from services.relay.continuity import Position, Shift, apply, end_of, switch
from services.relay.rewrite import Kind, Mint, MintMany, PlaylistError, Refresh, rewrite
from services.relay.sniff import (
    CONTENT_TYPES,
    SEGMENTS,
    Media,
    by_content_type,
    segment_extension,
    segment_extensions,
)
from services.relay.upstream import Body, Upstream, UpstreamError
from shared.fetch import Fetched
from shared.kvmirror import KvMirror
from shared.relay_urls import RelayTokenError, Signer
from shared.streams import StreamRecord
from shared.subjects import InvalidTokenError, check_session_key, check_token

PLAYLIST_TTL: Final = 1.0
#: LL-HLS blocking playlist reloads may be held by the origin for up to three target durations.
BLOCKING_TIMEOUT: Final = 30.0
BLOCKING_PARAMS: Final = ("_HLS_msn", "_HLS_part", "_HLS_skip")
MAX_REFS: Final = 50_000
PLAYLIST_TYPE: Final = CONTENT_TYPES[Media.PLAYLIST]
#: What a segment's sniffed type may teach about its playlist's other segments.
LEARNABLE: Final = SEGMENTS - {Media.INIT}
#: Upstream answers that mean the stream's URL (or its credentials) no longer works.
REFUSALS: Final = frozenset({401, 403, 410})

#: Where each viewer's URL prefix goes in a rewritten playlist kept for every viewer: NUL, which
#: RFC 8216 forbids in playlists (one that holds it is refused as unusable).
SLOT: Final = "\x00"
_SLOT_BYTES: Final = SLOT.encode()

#: Signed link prefixes remembered as checked (each viewer asks every couple of seconds).
MAX_VERIFIED: Final = 16_384

#: Told (stream key, upstream status, reason) when a stream's upstream refuses the relay.
OnRefused = Callable[[str, int, str], None]


class Ref(NamedTuple):
    """What a ref stands for: the upstream URL, its kind, and the playlist it was named in."""

    url: str
    kind: str
    playlist: str = ""


#: Makes a :class:`Ref` of a (url, kind, playlist) tuple without Python-level code.
_REF: Final = partial(tuple.__new__, Ref)


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


@dataclass(frozen=True, eq=False)
class Page:
    """A rewritten playlist as every viewer of the stream gets it: ``text`` has :data:`SLOT`
    where a viewer's signed URL prefix goes; ``parts`` is it encoded and split there, once."""

    text: str
    parts: tuple[bytes, ...]
    #: A master playlist (variants), which no continuity renumbering applies to.
    master: bool
    #: Whatever a server builds once per page to send it (the edge's response heads).
    heads: dict[str, object] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, text: str) -> Page:
        return cls(text, tuple(text.encode().split(_SLOT_BYTES)), "#EXT-X-STREAM-INF" in text)

    def render(self, prefix: str) -> bytes:
        """The playlist one viewer gets: its own prefix in every URI."""
        return prefix.encode().join(self.parts)

    def size(self, prefix: str) -> int:
        """``len(self.render(prefix))`` without rendering it."""
        return sum(map(len, self.parts)) + (len(self.parts) - 1) * len(prefix.encode())


@dataclass(frozen=True)
class Served:
    """A response: a playlist page, a body to stream, or a redirect (of one stream)."""

    content_type: str
    page: Page | None = None
    body: Body | None = None
    redirect: str | None = None


class Relay:
    """Everything the relay's routes need."""

    def __init__(self, signer: Signer, records: KvMirror[StreamRecord], upstream: Upstream, *,
                 redirect_public: bool = False, on_refused: OnRefused | None = None) -> None:
        self.signer = signer
        self.redirect_public = redirect_public
        self.records = records
        self.upstream = upstream
        self.on_refused = on_refused
        #: Stream -> ref -> what it stands for, oldest first.
        self.refs: dict[str, dict[str, Ref]] = {}
        self._paths: dict[str, dict[str, str]] = {}
        #: (stream, playlist URL) -> what a segment of that playlist was sniffed to be: names
        #: its segments that neither a map nor their upstream name types.
        self.learned: dict[tuple[str, str], str] = {}
        #: Playlist ref -> (master URL, position in it), and each master's playlist refs in order.
        self.slots: dict[str, dict[str, tuple[str, int]]] = {}
        self.orders: dict[tuple[str, str], list[str]] = {}
        #: (stream, ref) -> (upstream URL served, its shift, where the served text ended).
        self.continuity: dict[tuple[str, str], tuple[str, Shift, Position]] = {}
        self._rebuilds: dict[str, asyncio.Task[None]] = {}
        #: (session, stream, token) -> stream key and expiry of a link prefix checked already.
        self._verified: dict[tuple[str, str, str], tuple[str, int]] = {}
        #: (stream, playlist URL) -> the upstream answer and the page rewritten from it.
        self._pages: dict[tuple[str, str], tuple[Fetched, Page]] = {}
        #: (stream, ref) -> page rewritten, continuity state, page served (renumbered): what a
        #: viewer following ``ref`` gets while neither changes.
        self._followed: dict[tuple[str, str], tuple[Page, object, Page]] = {}
        #: (stream, playlist URL) -> its last rewrite, which the next upstream answer reuses.
        self._refreshes: dict[tuple[str, str], Refresh] = {}
        #: Stream -> how many of its refs were forgotten (a rewrite reused from before a
        #: forgetting would name refs no longer known).
        self._forgotten: dict[str, int] = {}

    def forget(self, key: str) -> None:
        """Drop everything learned about a removed stream, so memory follows the streams that
        exist (a re-created stream is learned again from its playlists)."""
        self.refs.pop(key, None)
        self._paths.pop(key, None)
        self.slots.pop(key, None)
        self._forgotten.pop(key, None)
        for table in (self._pages, self._followed, self._refreshes):
            for pair in [p for p in table if p[0] == key]:
                del table[pair]
        for pair in [p for p in self.learned if p[0] == key]:
            del self.learned[pair]
        for pair in [p for p in self.orders if p[0] == key]:
            del self.orders[pair]
        for pair in [p for p in self.continuity if p[0] == key]:
            del self.continuity[pair]

    def _verify(self, session: str, stream_id: str, token: str) -> str:
        """The stream key a relay URL prefix is signed for, or :class:`RelayError`."""
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
        return f"{session}.{stream_id}"

    async def authorise(self, session: str, stream_id: str, token: str) -> Target:
        key = self._verify(session, stream_id, token)
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

    def authorise_now(self, session: str, stream_id: str, token: str) -> Target | None:
        """:meth:`authorise` when it needs no waiting and succeeds, else ``None``. A prefix that
        checked out is remembered until it expires: one HMAC per viewer's link, not per request."""
        link = (session, stream_id, token)
        known = self._verified.get(link)
        if known is not None and known[1] >= time.time():
            key = known[0]
        else:
            try:
                key = self._verify(session, stream_id, token)
            except RelayError:
                return None
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[link] = (key, int(token.partition(".")[0], 36))
        record = self.records.get(key) if self.records.synced.is_set() else None
        if record is None:
            return None
        return Target(key=key, record=record, prefix=f"/s/{session}/{stream_id}/{token}")

    def _minter(self, key: str, prefix: str, playlist: str = "") -> tuple[Mint, MintMany]:
        """Mints the relay URLs of the playlist at ``playlist``, one at a time or many at once.
        The same upstream URL always gets the same relay URL (path remembered), so a player's
        view of a live window stays stable across refreshes whatever is learned meanwhile."""
        refs = self.refs.setdefault(key, {})
        # A live window repeats most URIs refresh after refresh: remember each one's path.
        paths = self._paths.setdefault(key, {})
        learned = self.learned.get((key, playlist))
        signer = self.signer

        def remember(url: str, ref: str, kind: str, ext: str) -> str:
            refs[ref] = Ref(url, kind, playlist)
            if len(refs) > MAX_REFS:
                forget_oldest()
            path = paths[url] = f"/{kind}/{ref}{ext or segment_extension(url, learned)}"
            return path

        def mint(url: str, kind: str, ext: str) -> str:
            path = paths.get(url)
            if path is None:
                path = remember(url, signer.ref(url), kind, ext)
            return prefix + path

        def many(urls: list[str], kind: str, ext: str) -> list[str]:
            get = paths.get
            found = [get(url) for url in urls]
            if None in found:  # first sight of some: all of them minted together
                new = list(dict.fromkeys(
                    url for url, path in zip(urls, found, strict=True) if path is None))
                minted = dict(zip(new, learn(new, kind, ext), strict=True))
                found = [minted[url] if path is None else path
                         for url, path in zip(urls, found, strict=True)]
            return [prefix + path for path in found]  # type: ignore[operator]

        def learn(new: list[str], kind: str, ext: str) -> list[str]:
            """The paths of URLs never minted before, remembered (the batch of ``remember``)."""
            new_refs = signer.refs(new)
            lead = f"/{kind}/"
            exts = segment_extensions(new, learned) if not ext else [ext] * len(new)
            new_paths = [lead + ref + e for ref, e in zip(new_refs, exts, strict=True)]
            refs.update(zip(new_refs, map(_REF, zip(new, repeat(kind), repeat(playlist))), strict=True))
            paths.update(zip(new, new_paths, strict=True))
            if len(refs) > MAX_REFS:
                forget_oldest()
            return new_paths

        def forget_oldest() -> None:
            """Over :data:`MAX_REFS`: the oldest refs go, an eighth more than needed at once (a
            dict forgets from its start cheaply in bulk, not one at a time)."""
            for ref in list(islice(refs, len(refs) - MAX_REFS + MAX_REFS // 8)):
                paths.pop(refs.pop(ref).url, None)
            self._forgotten[key] = self._forgotten.get(key, 0) + 1

        return mint, many

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
            self._refused(target.key, exc)
            raise RelayError(exc.status, exc.reason) from exc
        kept = self._pages.get((target.key, url))
        if kept is not None and kept[0] is got:  # rewritten already: the same upstream answer
            return Served(content_type=PLAYLIST_TYPE, page=kept[1])
        text = got.text
        if SLOT in text:
            self.upstream.forget(url)
            raise RelayError(502, "upstream sent an unusable playlist: a control character (NUL)")
        try:
            if mint is None:
                mint, many = self._minter(target.key, SLOT, url)
                refresh = None
                if not blocking:
                    refresh = self._refreshes.get((target.key, url))
                    if refresh is None:
                        refresh = self._refreshes[(target.key, url)] = Refresh()
                text = rewrite(text, str(got.url), mint, mint_many=many, refresh=refresh,
                               generation=self._forgotten.get(target.key, 0))
            else:
                text = rewrite(text, str(got.url), mint)
        except PlaylistError as exc:
            self.upstream.forget(url)
            raise RelayError(502, f"upstream sent an unusable playlist: {exc}") from exc
        # Wall-clock time for every viewer alike (services.relay.clock), in upstream numbering.
        page = Page.of(stamp(text, record.clock))
        if not blocking:  # blocking answers are one viewer's: never kept
            self._pages[(target.key, url)] = (got, page)
        return Served(content_type=PLAYLIST_TYPE, page=page)

    def _page_now(self, key: str, url: str) -> Page | None:
        """The page of the playlist at ``url`` if it is rewritten from a fresh cached answer."""
        got = self.upstream.cached_playlist(url)
        kept = self._pages.get((key, url))
        if got is None or kept is None or kept[0] is not got:
            return None
        return kept[1]

    def master_now(self, target: Target) -> Served | None:
        """:meth:`master` if the master is cached and rewritten already, else ``None``."""
        page = self._page_now(target.key, target.record.upstream_url)
        if page is None:
            return None
        self.upstream.hit_playlist(target.key)
        return Served(content_type=PLAYLIST_TYPE, page=page)

    async def master(self, target: Target) -> Served:
        """The master playlist; remembers which playlist ref holds which slot of it."""
        master_url = target.record.upstream_url
        order: list[str] = []
        mint, _ = self._minter(target.key, SLOT, master_url)

        def recording(url: str, kind: str, ext: str) -> str:
            path = mint(url, kind, ext)
            if kind == Kind.PLAYLIST:
                order.append(path.rsplit("/", 1)[1].partition(".")[0])
            return path

        served = await self.playlist(target, master_url, mint=recording)
        if order:  # rewritten now (a kept page minted nothing, and its order is recorded)
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
                url = self.refs[target.key][order[slot[1]]].url
        served = await self.playlist(target, url, blocking)
        page = served.page
        if page is None or page.master:
            return served
        state = self.continuity.get((target.key, ref))
        kept = self._followed.get((target.key, ref))
        if kept is not None and kept[0] is page and kept[1] is state:
            return Served(content_type=served.content_type, page=kept[2])
        shift = Shift() if state is None else state[1]
        if state is not None and state[0] != url:
            shift = switch(state[2], page.text)
        text = apply(page.text, shift)
        state = self.continuity[(target.key, ref)] = (url, shift, end_of(text))
        out = page if text is page.text else Page.of(text)
        if not blocking:
            self._followed[(target.key, ref)] = (page, state, out)
        return Served(content_type=served.content_type, page=out)

    def _followed_now(self, target: Target, ref: str, url: str) -> Page | None:
        """:meth:`followed` (without blocking parameters) if nothing needs fetching or
        computing: the page and the viewer's continuity are as when it was last served."""
        slot = self.slots.get(target.key, {}).get(ref)
        if slot is not None and slot[0] != target.record.upstream_url:
            return None
        page = self._page_now(target.key, url)
        if page is None or page.master:
            return page
        kept = self._followed.get((target.key, ref))
        if kept is None or kept[0] is not page or kept[1] is not self.continuity.get((target.key, ref)):
            return None
        return kept[2]

    def _ref(self, key: str, ref: str) -> Ref | None:
        """What a stream's ref stands for, if it was minted."""
        refs = self.refs.get(key)
        return None if refs is None else refs.get(ref)

    def _refused(self, key: str, error: UpstreamError) -> None:
        """Tell ``on_refused`` when the upstream said the stream's URL no longer works."""
        if self.on_refused is not None and error.upstream_status in REFUSALS:
            self.on_refused(key, error.upstream_status, error.reason)

    async def resource(self, target: Target, kind: str, name: str,
                       blocking: Mapping[str, str] | None = None) -> Served:
        """A playlist, segment, key, init section or data file the stream's playlists named."""
        ref, _, ext = name.partition(".")
        entry = self._ref(target.key, ref)
        if entry is None:
            await self._rebuild(target)
            entry = self._ref(target.key, ref)
        if entry is None or entry.kind != kind:
            raise RelayError(404, "no such resource in this stream")
        url = entry.url
        if kind == Kind.PLAYLIST:
            return await self.followed(target, ref, url, blocking)
        named = CONTENT_TYPES.get(f".{ext}", "application/octet-stream")
        record = target.record
        if kind in (Kind.MEDIA, Kind.RAW) and record.public_segments and self.redirect_public:
            return Served(content_type=named, redirect=url)
        # Media is sniffed and cleaned as it arrives; encrypted or byte-ranged media, keys
        # and data pass byte for byte.
        body = self.upstream.segment(url, record.headers, record.cookies, target.key,
                                     clean=kind == Kind.MEDIA)
        try:
            await _first_bytes(body)
        except UpstreamError as exc:
            self._refused(target.key, exc)
            raise RelayError(exc.status, exc.reason) from exc
        return self._body(target, entry, named, body)

    def _body(self, target: Target, entry: Ref, named: str, body: Body) -> Served:
        """How a segment, key, init section or data body is answered (its type)."""
        if entry.kind == Kind.DATA:
            return Served(content_type=body.content_type, body=body)
        if entry.kind != Kind.MEDIA:
            return Served(content_type=named, body=body)
        media = body.media or by_content_type(body.content_type)
        if media == Media.PLAYLIST:  # relayed as it is, it would show viewers upstream URLs
            raise RelayError(502, "upstream sent a playlist where a segment belongs")
        if media in LEARNABLE and entry.playlist:
            self.learned[(target.key, entry.playlist)] = media
        return Served(content_type=CONTENT_TYPES.get(media or "", named), body=body)

    def resource_now(self, target: Target, kind: str, name: str) -> Served | None:
        """:meth:`resource` (without blocking parameters) when it is a cache hit: a playlist
        kept rewritten or a whole cached body; ``None`` for anything else (fetches, errors,
        redirects), which :meth:`resource` answers."""
        ref, _, ext = name.partition(".")
        entry = self._ref(target.key, ref)
        if entry is None or entry.kind != kind:
            return None
        if kind == Kind.PLAYLIST:
            page = self._followed_now(target, ref, entry.url)
            if page is None:
                return None
            self.upstream.hit_playlist(target.key)
            return Served(content_type=PLAYLIST_TYPE, page=page)
        if kind in (Kind.MEDIA, Kind.RAW) and target.record.public_segments \
                and self.redirect_public:
            return None
        body = self.upstream.cached_segment(entry.url)
        if body is None:
            return None
        try:
            served = self._body(target, entry, CONTENT_TYPES.get(f".{ext}",
                                                                 "application/octet-stream"), body)
        except RelayError:
            return None
        self.upstream.hit_segment(entry.url, target.key)
        return served

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
        for entry in list(self.refs.get(target.key, {}).values()):
            if entry.kind == Kind.PLAYLIST:
                await self.playlist(target, entry.url)


async def _first_bytes(body: Body) -> None:
    """Wait for the first chunk (or the end, or an error) so errors get a proper status."""
    while not body.chunks and not body.done and body.error is None:
        body.changed.clear()
        if not body.chunks and not body.done and body.error is None:
            await body.changed.wait()
    if body.error is not None and not body.chunks:
        raise body.error
