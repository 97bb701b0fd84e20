"""What looks like a playlist URL, and how likely it is one.

Playlists are known by their body (``#EXTM3U``), which only probing reads; here candidates are
ranked so the likeliest are probed first:

* :attr:`Tier.PLAYLIST`: named ``.m3u8``, or typed as HLS (``<source type=application/x-mpegurl>``,
  ``{file: ..., type: "hls"}``);
* :attr:`Tier.PLAYER`: in a player's field (``file:``, ``source:``, ``<video src>``...), whatever
  its name: real playlists are also called ``mono.css``, ``.txt``, ``.php`` or nothing;
* :attr:`Tier.OTHER`: any other absolute URL in a script or JSON.

Files that are never playlists (images, video files, scripts, subtitles...) are left out by
their extension unless typed as HLS.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from enum import IntEnum
from typing import Final
from urllib.parse import urljoin, urlsplit

from services.extractor.registry import PLAYLIST_TYPES
from services.extractor.scan.escapes import ENCODED_URL, js_unescape, percent_decode

MAX_URL: Final = 4096
#: Extensions of files that are never HLS playlists.
NOT_PLAYLISTS: Final = frozenset({
    "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "ico", "bmp",
    "mp4", "m4v", "m4a", "m4s", "webm", "mkv", "avi", "mov", "flv", "mp3", "aac", "ogg", "wav",
    "ts", "mpd", "vtt", "srt", "js", "mjs", "map", "html", "htm", "xml", "json", "pdf", "zip",
    "woff", "woff2", "ttf", "eot", "otf", "swf", "wasm"})
#: Fields of player configurations and setups (jwplayer, Clappr, video.js, Plyr, hls.js...).
PLAYER_FIELDS: Final = frozenset({
    "file", "source", "sources", "src", "hls", "playlist", "stream", "streamurl", "videourl",
    "hlsurl", "m3u8", "manifest", "manifesturl", "video", "liveurl"})
#: Fields that say what type a source is.
TYPE_FIELDS: Final = frozenset({"type", "mimetype", "mime", "format", "kind"})
_HLS_WORDS: Final = frozenset({"hls", "m3u8", "m3u", "mpegurl", "x-mpegurl"})
_URL_SHAPE: Final = re.compile(
    r"(?:https?:)?//[\w.-]+(?::\d{1,5})?(?:[/?#][^\s\"'<>{}`\\^]*+)?"
    r"|/?[\w.~%-]++(?:/[^\s\"'<>{}`\\^]*+)?", re.IGNORECASE)
_ABSOLUTE: Final = re.compile(r"(?:https?:)?//[\w-]+(?:\.[\w-]+)*+(?::\d{1,5})?(?:[/?#]|$)",
                              re.IGNORECASE)
_PLAYLIST_NAME: Final = re.compile(r"\.m3u8?(?![\w])", re.IGNORECASE)
#: A run of characters a URL (escaped or not) is made of, in text; ``(``, ``)`` and quotes end it.
_URL_RUN: Final = re.compile(r"[\w\-.~:/?#@!$&*+,;=%\\\[\]|]++")
_NOT_URL: Final = re.compile(r"[^\w\-.~:/?#@!$&*+,;=%\\\[\]|]")
_URL_START: Final = re.compile(r"https?://|(?<![:/\w])//(?=[\w-]+\.)|(?<==)/(?=[\w.~-])",
                               re.IGNORECASE)


class Tier(IntEnum):
    """How likely a candidate is a playlist; lower is probed first."""

    PLAYLIST = 0
    PLAYER = 1
    OTHER = 2


def is_hls_type(value: str) -> bool:
    """Whether a ``type`` value says HLS (``application/x-mpegURL``, ``hls``, ``m3u8``...)."""
    value = value.split(";", 1)[0].strip().lower()
    return value in PLAYLIST_TYPES or value in _HLS_WORDS or value.endswith("mpegurl")


def named_playlist(url: str) -> bool:
    """Whether ``url`` is named like a playlist (``.m3u8`` in its path or query)."""
    return bool(_PLAYLIST_NAME.search(url))


def extension(url: str) -> str:
    """The extension of the URL's last path segment, lower case, without the dot."""
    path = urlsplit(url).path if "//" in url[:8] else url.split("?", 1)[0].split("#", 1)[0]
    return posixpath.splitext(posixpath.basename(path))[1][1:].lower()


def never_playlist(url: str) -> bool:
    """Whether the URL names a kind of file that is never a playlist."""
    return extension(url) in NOT_PLAYLISTS


def url_shaped(value: str) -> bool:
    """Whether ``value`` is a URL or a path as a whole (no spaces, markup or code in it)."""
    return 2 < len(value) <= MAX_URL and bool(_URL_SHAPE.fullmatch(value)) and (
        "/" in value or "." in value)


def absolute(value: str) -> bool:
    """Whether ``value`` starts with ``http(s)://host`` or ``//host``."""
    return bool(_ABSOLUTE.match(value))


def resolve(base: str, value: str) -> str | None:
    """``value`` made absolute against ``base``: an http(s) URL without fragment, or ``None``."""
    if len(value) > MAX_URL:
        return None
    try:
        joined = urljoin(base, value.strip())
        parts = urlsplit(joined)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts._replace(fragment="").geturl()


def rank(url: str, *, player: bool = False, typed: bool = False) -> Tier | None:
    """The tier of a URL found in a page, or ``None`` when it is no candidate."""
    if typed or named_playlist(url):
        return Tier.PLAYLIST
    if never_playlist(url):
        return None
    if player:
        return Tier.PLAYER
    if absolute(url) and urlsplit(url if "://" in url else "http:" + url).path not in ("", "/"):
        return Tier.OTHER
    return None


def sweep(text: str) -> Iterator[str]:
    """URLs named ``.m3u8`` anywhere in ``text``, however escaped: ``https:\\/\\/``, ``\\x2F``,
    ``\\u002F``, or percent-encoded inside another URL. Paths (``/live/x.m3u8``) too; a bare
    ``x.m3u8`` is usually a fragment a script is assembling, and is left out."""
    if "m3u" not in text and "M3U" not in text:
        return
    end = 0
    for hit in _PLAYLIST_NAME.finditer(text):
        if hit.start() < end:
            continue  # in the run already read
        # The run holding the hit: back to the last character no URL has (at most MAX_URL
        # back, never into the previous run: every character is looked at once or twice).
        start = max(end, hit.start() - MAX_URL)
        for stop in _NOT_URL.finditer(text, start, hit.start()):
            start = stop.end()
        run = _URL_RUN.match(text, start)
        end = run.end() if run else hit.end()
        chunk = text[start:end]
        if "\\" in chunk:
            chunk = js_unescape(chunk)
        for encoded in ENCODED_URL.finditer(chunk):
            yield from _pieces(percent_decode(encoded[0]))
        yield from _pieces(chunk)


def _pieces(chunk: str) -> Iterator[str]:
    """The URLs of one run: each starts at a scheme (or ``//host``) and runs to the next;
    a run that starts with ``/`` is a path."""
    starts = [m.start() for m in _URL_START.finditer(chunk)]
    if not starts or (starts[0] > 0 and chunk.startswith("/")):
        starts.insert(0, 0)
    for start, end in zip(starts, [*starts[1:], len(chunk)], strict=True):
        piece = chunk[start:end].rstrip(".,;:|[\\")  # sentence punctuation, not "="
        if (named_playlist(piece) and (piece.startswith("/") or absolute(piece))
                and len(piece) <= MAX_URL and not ENCODED_URL.search(piece)):
            # (a page whose query carries an encoded playlist URL is not one: that URL is)
            yield piece
