"""The gallery's patterns: one page per way real live-sport embed sites hide or guard a stream.

Ids and paths are stable (tests, the benchmark and operators' source lists name them).
``extractor`` is the cheapest extractor expected to find the stream: ``http`` when the URL can
be read from the markup and scripts without running them, ``browser`` when only running the
page's JavaScript (and clicking) reveals it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

PREFIX: Final = "/g"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One page of the gallery."""

    id: str
    extractor: Literal["http", "browser"]
    description: str

    @property
    def path(self) -> str:
        return f"{PREFIX}/p/{self.id}"


PATTERNS: Final = (
    Pattern("noext", "http",
            "master playlist named mono.css, media playlists extensionless and .txt (text/plain), "
            "extensionless segments; same-site Referer required"),
    Pattern("packed", "http",
            "URL inside Dean Edwards' packer, packed twice, next to a second packed block (ads); "
            "nginx secure_link md5+expires"),
    Pattern("base64", "http",
            "URL in atob(\"...\") and in a base64 JSON player config with escaped slashes; "
            "Akamai-style hdnts token"),
    Pattern("player-config", "http",
            "jwplayer setup with sources:[{file:...}] built by string concatenation; Referer must "
            "be the page"),
    Pattern("docwrite", "browser",
            "document.write(unescape('%3C%69...')) injects a frame that writes a player iframe "
            "whose src is split across concatenation; each hop checks its Referer"),
    Pattern("deep-iframes", "http",
            "page -> iframe -> iframe -> iframe player, each hop 403 unless its Referer is the "
            "previous hop's URL; cross-origin CDN wants the player's Referer and Origin"),
    Pattern("xhr-token", "browser",
            "page sets a cookie; its JS calls /g/api/token (cookie + X-Requested-With) for a 90 s "
            "token that playlists and segments carry"),
    Pattern("click-to-play", "browser",
            "cross-site iframe (other loopback name) whose obfuscated player loads the playlist "
            "only after a click on the play overlay"),
    Pattern("ua-origin", "http",
            "cross-origin CDN that refuses library User-Agents and wants the embedding site's "
            "Origin"),
    Pattern("decoy-vod", "http",
            "player playlist lists a short VOD ad (ENDLIST) before the live stream; only the "
            "live one should be chosen"),
    Pattern("cloaked", "http",
            "segments disguised as images: .png URLs, image/png, a real 1x1 PNG before the "
            "MPEG-TS"),
    Pattern("redirect-cdn", "http",
            "the page's playlist URL answers 302 to a tokened CDN on the other loopback name, "
            "token expiring after 120 s"),
)

BY_ID: Final = {p.id: p for p in PATTERNS}
