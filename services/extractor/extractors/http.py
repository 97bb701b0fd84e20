"""The ``http`` extractor: fetch the page with httpx, find what it hides without running its
JavaScript (``services.extractor.scan``), and follow its iframes to the player.

Candidates come from markup (``<video>``/``<source>``, links, ``og:video``), player configs,
strings built by concatenation, packed scripts, base64, escaped and percent-encoded text and
markup written by scripts, ranked: named or typed as HLS first, then player fields, then other
URLs. Iframes are followed four deep (four per page, sixteen pages in all), each hop with the
previous hop's URL as Referer and the cookies its host set on the way; a candidate carries the
identity the player's frame presents: User-Agent, Referer (the frame's URL, as its referrer
policy allows) and Origin (the frame's origin).

Scanning runs in a worker thread within a time budget shared by the pages of one extraction;
a page that exceeds it is :class:`PageTooComplexError`. What needs JavaScript to run is left
to the browser extractor.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from services.extractor.registry import MAX_CANDIDATES, Context, ExtractionError, Found
from services.extractor.scan.budget import Budget, TooComplexError
from services.extractor.scan.page import Candidate, PageScan, scan
from shared.fetch import FetchError, fetch

MAX_PAGE: Final = 2 * 1024 * 1024
#: Iframes followed below the page: page -> iframe -> iframe -> iframe -> iframe.
MAX_IFRAME_DEPTH: Final = 4
#: Iframes followed per page (in document order), and pages fetched in all.
MAX_IFRAMES: Final = 4
MAX_PAGES: Final = 16
#: Seconds of scanning (in the worker thread) one extraction may spend, all pages together.
SCAN_SECONDS: Final = 4.0
#: An iframe's fetch gets at most this share of the extraction's deadline.
_HOP_SHARE: Final = 0.25


class PageTooComplexError(ExtractionError):
    """A page needs more scanning time or decoded output than its budget (hostile, or
    absurd)."""


def shown(url: str) -> str:
    """A URL as an error reason may quote it: without userinfo, query string or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def referer(frame: str, target: str, policy: str) -> str | None:
    """The Referer a frame at ``frame`` sends to ``target`` under its referrer ``policy``
    (``<meta name=referrer>``); without one, its full URL (what CDNs checking it expect)."""
    full = urlunsplit(urlsplit(frame)._replace(fragment=""))
    same = origin(frame) == origin(target)
    downgrade = frame.startswith("https:") and target.startswith("http:")
    policy = policy.rsplit(",", 1)[-1].strip()  # the last policy a page gives wins
    if policy == "no-referrer" or (downgrade and policy.startswith("strict")):
        return None
    if policy in ("origin", "strict-origin") or (
            not same and policy in ("origin-when-cross-origin", "strict-origin-when-cross-origin")):
        return origin(frame) + "/"
    if policy == "same-origin" and not same:
        return None
    if policy == "no-referrer-when-downgrade" and downgrade:
        return None
    return full


@dataclass
class _Seen:
    """One candidate, with where it sits in the walk (for ordering) and its frame."""

    candidate: Candidate
    path: tuple[int, ...]
    order: int
    frame: str
    policy: str
    depth: int


@dataclass
class _Walk:
    """The state of one extraction: cookies by host, pages fetched, scanning time left."""

    ctx: Context
    jar: dict[str, dict[str, str]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    scan_left: float = SCAN_SECONDS
    too_complex: str = ""
    titles: list[str] = field(default_factory=list)
    seen: list[_Seen] = field(default_factory=list)

    def cookies(self, url: str) -> dict[str, str]:
        return dict(self.jar.get((urlsplit(url).hostname or "").lower(), {}))


class HttpExtractor:
    """Plain HTTP and HTML parsing: the cheapest extractor, tried first."""

    name = "http"

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        walk = _Walk(ctx)
        if ctx.cookies:
            walk.jar[(urlsplit(url).hostname or "").lower()] = dict(ctx.cookies)
        walk.visited.add(url)
        await self._page(walk, url, referer=ctx.headers.get("Referer"), path=(0,))
        found = self._found(walk)
        if found:
            return found
        if walk.too_complex:
            raise PageTooComplexError(walk.too_complex)
        raise ExtractionError(f"no playlist in the page at {shown(url)} or its iframes")

    def _found(self, walk: _Walk) -> list[Found]:
        """Candidates of every page, best tier first, then in the order of the walk."""
        ranked = sorted(walk.seen, key=lambda s: (s.candidate.tier, s.path, s.order))
        title = next((t for t in walk.titles if t), "")
        out: dict[str, Found] = {}
        for s in ranked:
            url = s.candidate.url
            if url in out:
                continue
            headers = {"User-Agent": walk.ctx.user_agent}
            sent = referer(s.frame, url, s.policy)
            if sent:
                headers["Referer"] = sent
            headers["Origin"] = origin(s.frame)
            via = s.candidate.via if s.depth == 0 else f"iframe {s.depth} > {s.candidate.via}"
            out[url] = Found(url=url, headers=headers, cookies=walk.cookies(url), title=title,
                             via=via)
            if len(out) == MAX_CANDIDATES:
                break
        return list(out.values())

    async def _page(self, walk: _Walk, url: str, *, referer: str | None,
                    path: tuple[int, ...]) -> None:
        """Fetch and scan one page, then its iframes (concurrently, in document order)."""
        ctx, depth = walk.ctx, len(path) - 1
        headers = {"User-Agent": ctx.user_agent, **ctx.headers}
        if referer:
            headers["Referer"] = referer
        deadline = ctx.deadline if depth == 0 else max(2.0, ctx.deadline * _HOP_SHARE)
        try:
            page = await fetch(ctx.client, url, policy=ctx.policy, headers=headers,
                               cookies=walk.cookies(url), max_bytes=MAX_PAGE, deadline=deadline)
        except FetchError as exc:
            if depth > 0:
                return
            raise ExtractionError(f"{shown(url)}: {exc.reason}",
                                  refused=exc.status in (401, 403, 451)) from exc
        final = str(page.url)
        walk.jar.setdefault((page.url.host or "").lower(), {}).update(page.cookies)
        scanned = await self._scan(walk, page.text, final, top=depth == 0)
        if scanned is None:
            return
        walk.jar.setdefault((page.url.host or "").lower(), {}).update(scanned.cookies)
        walk.titles.append(scanned.title)
        walk.seen += [_Seen(c, path, n, final, scanned.referrer_policy, depth)
                      for n, c in enumerate(scanned.candidates)]
        if depth >= MAX_IFRAME_DEPTH:
            return
        frames: list[str] = []
        for frame in scanned.iframes:
            if len(frames) == MAX_IFRAMES or len(walk.visited) >= MAX_PAGES:
                break
            if frame not in walk.visited:
                walk.visited.add(frame)
                frames.append(frame)
        async with asyncio.TaskGroup() as group:
            for n, frame in enumerate(frames):
                group.create_task(self._page(walk, frame, referer=final, path=(*path, n)))

    async def _scan(self, walk: _Walk, text: str, url: str, *, top: bool) -> PageScan | None:
        """Scan a page in a worker thread within what is left of the scanning budget."""
        left = walk.scan_left
        started = time.monotonic()
        reason = f"page too complex: pages not scanned within {SCAN_SECONDS:.1f} s"
        try:
            if left > 0:
                # The thread checks the budget itself; the timeout is for C code that cannot
                # (lxml's parse, bounded by the page cap and the attribute check).
                async with asyncio.timeout(left + 0.5):
                    return await asyncio.to_thread(scan, text, url, Budget(left))
        except TooComplexError as exc:
            reason = str(exc)
        except TimeoutError:
            pass
        finally:
            walk.scan_left -= time.monotonic() - started
        if top:
            raise PageTooComplexError(f"{shown(url)}: {reason}")
        walk.too_complex = walk.too_complex or f"{shown(url)}: {reason}"
        return None
