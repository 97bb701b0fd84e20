"""The ``http`` extractor: fetch the page with httpx, parse the HTML, find the playlist.

It looks where players put playlists: ``<video>``/``<source>`` tags, links, ``og:video`` meta,
quoted URLs in inline scripts and JSON (escaped slashes too), and it follows iframes (two deep)
with the embedding page as Referer and the cookies set on the way, which is what an embedded
player needs. What needs JavaScript to exist is left to the browser extractor.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urljoin, urlsplit, urlunsplit

from services.extractor.registry import PLAYLIST_URL, Context, ExtractionError, Found
from shared.fetch import FetchError, fetch

MAX_PAGE: Final = 2 * 1024 * 1024
MAX_IFRAME_DEPTH: Final = 2
MAX_IFRAMES: Final = 4
_QUOTED: Final = re.compile(
    r"""["'](?P<u>(?:https?:)?(?:\\?/\\?/)?[^"'\s<>]*?\.m3u8(?:\?[^"'\s<>]*)?)["']""", re.IGNORECASE)
_HLS_TYPES: Final = ("application/x-mpegurl", "application/vnd.apple.mpegurl")


class _Page(HTMLParser):
    """Collects playlist candidates, iframes and the title of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.candidates: list[str] = []
        self.iframes: list[str] = []
        self.title = ""
        self._in_title = False
        self._in_script = False
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("video", "source", "audio"):
            src = a.get("src", "")
            if src and (PLAYLIST_URL.search(src) or a.get("type", "").lower() in _HLS_TYPES):
                self.candidates.append(src)
        elif tag == "a" and PLAYLIST_URL.search(a.get("href", "")):
            self.candidates.append(a["href"])
        elif tag == "meta" and a.get("property", "").startswith("og:video"):
            if PLAYLIST_URL.search(a.get("content", "")):
                self.candidates.append(a["content"])
        elif tag == "iframe" and a.get("src"):
            self.iframes.append(a["src"])
        elif tag == "title":
            self._in_title = True
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._in_script:
            self.scripts.append(data)


def find_playlists(html: str) -> tuple[list[str], list[str], str]:
    """Playlist candidates (markup first, then scripts and JSON), iframes and the title."""
    page = _Page()
    page.feed(html)
    page.close()
    found = list(page.candidates)
    for text in [*page.scripts, html]:
        # In scripts a bare "x.m3u8" is usually a fragment being assembled; keep only paths/URLs.
        found.extend(u for m in _QUOTED.finditer(text) if "/" in (u := m["u"].replace("\\/", "/")))
    return list(dict.fromkeys(found)), page.iframes, page.title.strip()


def shown(url: str) -> str:
    """A URL as an error reason may quote it: without userinfo, query string or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HttpExtractor:
    """Plain HTTP and HTML parsing: the cheapest extractor, tried first."""

    name = "http"

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        cookies = dict(ctx.cookies)
        found = await self._page(url, ctx, cookies, referer=ctx.headers.get("Referer"), depth=0)
        if not found:
            raise ExtractionError(f"no playlist in the page at {shown(url)} or its iframes")
        return list({f.url: f for f in reversed(found)}.values())[::-1]  # first of each URL

    async def _page(self, url: str, ctx: Context, cookies: dict[str, str], *,
                    referer: str | None, depth: int) -> list[Found]:
        """Candidates of a page (its own first, then its iframes', in order)."""
        headers = {"User-Agent": ctx.user_agent, **ctx.headers}
        if referer:
            headers["Referer"] = referer
        try:
            page = await fetch(ctx.client, url, policy=ctx.policy, headers=headers, cookies=cookies,
                               max_bytes=MAX_PAGE, deadline=ctx.deadline)
        except FetchError as exc:
            if depth > 0:
                return []
            raise ExtractionError(f"{shown(url)}: {exc.reason}",
                                  refused=exc.status in (401, 403, 451)) from exc
        cookies.update(page.cookies)
        final = str(page.url)
        candidates, iframes, title = find_playlists(page.text)
        found = [Found(url=absolute, headers={"User-Agent": ctx.user_agent, "Referer": final},
                       cookies=dict(cookies), title=title, via="page")
                 for c in candidates
                 if (absolute := urljoin(final, c)).startswith(("http://", "https://"))]
        if depth < MAX_IFRAME_DEPTH:
            for frame in iframes[:MAX_IFRAMES]:
                absolute = urljoin(final, frame)
                if absolute.startswith(("http://", "https://")):
                    inner = await self._page(absolute, ctx, cookies, referer=final, depth=depth + 1)
                    found += [Found(url=f.url, headers=f.headers, cookies=f.cookies,
                                    title=f.title or title, via=f"iframe {f.via}") for f in inner]
        return found
