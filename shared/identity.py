"""The identity Slipstream presents to sites: a current desktop browser's, never a library's.

Sites and CDNs refuse ``python-httpx``, ``python-requests``, yt-dlp's and streamlink's
User-Agents; the browser extractor's Chromium, the http extractor, the probe and the relay all
present this one unless a source sets its own (``user_agent``) or the page's player sent
another (kept in the stream record).
"""

from __future__ import annotations

from typing import Final

BROWSER_USER_AGENT: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36")

#: Headers of a request that make up the identity a stream needs, besides cookies: what a
#: page's player sent for the playlist and the relay sends again.
IDENTITY_HEADERS: Final = frozenset({"user-agent", "referer", "origin", "authorization"})


def is_identity_header(name: str) -> bool:
    """Whether a request header is part of the identity a stream needs (custom ``X-`` headers
    a player sets, such as ``X-Requested-With`` or a CDN token, included)."""
    lower = name.lower()
    return lower in IDENTITY_HEADERS or lower.startswith("x-")
