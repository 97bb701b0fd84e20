"""The extractor registry: which extractors exist, what they match, in which order ``auto`` tries
them, and lazy loading (yt-dlp, streamlink and Playwright are imported only when used).

Modelled on streamlink's plugins and yt-dlp's extractors: each entry declares a name, a cost
(``auto`` tries cheapest first) and a URL predicate; the generic ones match every http(s) page.

An extractor returns ordered *candidates* (best first), not one URL: a page often lists an ad
or a VOD before its live stream, and only probing tells them apart (``resolve``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

import httpx

from shared.egress import EgressPolicy
from shared.identity import BROWSER_USER_AGENT

#: A URL *named* like a playlist: a hint for ordering candidates, never a requirement (real
#: playlists are also named ``mono.css``, ``.txt``, ``.php`` or nothing; their body decides).
PLAYLIST_URL: Final = re.compile(r"\.m3u8(\?|#|$)", re.IGNORECASE)
#: Response Content-Types that say "HLS playlist".
PLAYLIST_TYPES: Final = frozenset({"application/vnd.apple.mpegurl", "application/x-mpegurl",
                                   "audio/mpegurl", "audio/x-mpegurl", "application/mpegurl",
                                   "video/mpegurl", "video/x-mpegurl"})
#: At most this many candidates of one extractor are probed.
MAX_CANDIDATES: Final = 8


def is_playlist_type(content_type: str) -> bool:
    """Whether a Content-Type header value names an HLS playlist."""
    return content_type.split(";", 1)[0].strip().lower() in PLAYLIST_TYPES


def is_playlist_body(body: bytes) -> bool:
    """Whether a body is an HLS playlist (what it is, not what it is called)."""
    return body[:64].removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"#EXTM3U")


class ExtractionError(Exception):
    """An extractor found no stream. ``refused`` tells "the site said no" from "nothing there"."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


@dataclass(frozen=True)
class Found:
    """A playlist candidate an extractor found, with what fetching it needs (the identity the
    page's player presented: User-Agent, Referer, Origin, custom headers, cookies)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    title: str = ""
    expires_at: datetime | None = None
    #: Where on the page it was found (``video tag``, ``packed script``, ``network``...).
    via: str = ""


@dataclass(frozen=True)
class Context:
    """What every extractor gets: the egress-guarded client and policy, the source's extras."""

    client: httpx.AsyncClient
    policy: EgressPolicy
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    deadline: float = 20.0
    chromium: str = "/usr/bin/chromium"
    #: The egress proxy (``shared.egress_proxy``) for libraries that open their own connections.
    proxy: str = ""
    #: The User-Agent to present: the source's own, else a current desktop browser's.
    user_agent: str = BROWSER_USER_AGENT


class Extractor(Protocol):
    """One way of turning a page URL into a playlist URL."""

    name: str

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        """The playlist candidates behind ``url``, best first (never empty), or
        :class:`ExtractionError`."""
        ...


def any_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def playlist_or_hls(url: str) -> bool:
    return url.startswith("hls://") or (any_http(url) and bool(PLAYLIST_URL.search(url)))


@dataclass(frozen=True)
class Entry:
    """A registered extractor: name, cost, what it matches, and where its class lives."""

    name: str
    cost: int
    target: str
    matches: Callable[[str], bool] = any_http

    def load(self) -> Extractor:
        module, _, attr = self.target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        instance: Extractor = cls()
        return instance


REGISTRY: Final = (
    Entry("http", 0, "services.extractor.extractors.http:HttpExtractor"),
    Entry("ytdlp", 1, "services.extractor.extractors.ytdlp:YtDlpExtractor"),
    Entry("streamlink", 2, "services.extractor.extractors.streamlink:StreamlinkExtractor",
          playlist_or_hls),
    Entry("browser", 3, "services.extractor.extractors.browser:BrowserExtractor"),
)
_BY_NAME: Final = {e.name: e for e in REGISTRY}
_loaded: dict[str, Extractor] = {}


def chain(choice: str, url: str) -> list[Entry]:
    """The extractors to try for ``url``: the named one, or (``auto``) every match by cost."""
    if choice != "auto":
        if choice not in _BY_NAME:
            raise KeyError(f"no extractor named {choice!r} (known: {', '.join(_BY_NAME)})")
        return [_BY_NAME[choice]]
    return sorted((e for e in REGISTRY if e.matches(url)), key=lambda e: e.cost)


def get(name: str) -> Extractor:
    """The (shared, lazily imported) instance of one extractor."""
    if name not in _loaded:
        _loaded[name] = _BY_NAME[name].load()
    return _loaded[name]
