"""The demo source pages, in increasing order of difficulty for an extractor.

(a) ``plain``: the playlist in a ``<video><source>`` tag;
(b) ``scripted``: JavaScript builds the playlist URL (with a token) at run time and fetches it;
(c) ``embedded``: an iframe whose player sets a cookie; the origin refuses the stream without
    that cookie and the player's Referer.
"""

from __future__ import annotations

import html
import json

_STYLE = ("body{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:2rem}"
          "a{color:#ff6b35}video{max-width:100%;background:#000}")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def index(*, gallery: bool = False) -> str:
    """A page for humans listing the demo sources (and the gallery, when it is on)."""
    more = ("<p><a href=/g/>/g/</a>: the gallery of hard pages, one per pattern real embed "
            "sites use</p>" if gallery else "")
    return _page("Slipstream demo origin", (
        "<p>A looping live HLS stream and source pages for the extractors.</p><ul>"
        "<li><a href=/live/master.m3u8>/live/master.m3u8</a>: the public live stream</li>"
        "<li><a href=/pages/plain>/pages/plain</a>: playlist in a &lt;video&gt; tag</li>"
        "<li><a href=/pages/scripted>/pages/scripted</a>: URL built by JavaScript</li>"
        "<li><a href=/pages/embedded>/pages/embedded</a>: iframe, Referer and cookie</li></ul>"
    ) + more)


def plain() -> str:
    """(a) The playlist is right there in the markup."""
    return _page("Demo stream: plain", (
        "<video controls muted playsinline width=640>"
        "<source src='/live/master.m3u8' type='application/x-mpegURL'></video>"
    ))


def keyed(key: str) -> str:
    """(d) A page that needs a header (``X-Demo-Key``): the playlist link carries the key, so
    which key resolved a stream shows in its URL (operators' sources with custom headers)."""
    return _page("Demo stream: keyed", (
        "<video controls muted playsinline width=640>"
        f"<source src='/live/master.m3u8?key={key}' type='application/x-mpegURL'></video>"
    ))


def scripted(token: str) -> str:
    """(b) The URL exists only after the script runs: the token is assembled from char codes."""
    codes = json.dumps([ord(c) for c in reversed(token)])
    script = (
        "(function(){"
        f"var c={codes};"
        "var t=String.fromCharCode.apply(null,c.reverse());"
        "var u=location.origin+'/'+['t',t,'master.m3u8'].join('/');"
        "var v=document.getElementById('player');"
        "fetch(u,{credentials:'same-origin'}).then(function(r){return r.text()})"
        ".then(function(){v.dataset.src=u;v.src=u;}).catch(function(e){console.warn(e)});"
        "})();"
    )
    return _page("Demo stream: scripted", (
        f"<video id=player controls muted playsinline width=640></video><script>{script}</script>"
    ))


def embedded() -> str:
    """(c) The outer page: the player lives in an iframe."""
    return _page("Demo stream: embedded", (
        "<p>The player below is embedded from another path.</p>"
        "<iframe src='/embed/player' width=680 height=400 allowfullscreen></iframe>"
    ))


def embed_player() -> str:
    """(c) The iframe: it sets the cookie (in the response) and loads the secure stream."""
    return _page("Embedded player", (
        "<video controls muted playsinline width=640>"
        "<source src='/secure/master.m3u8' type='application/x-mpegURL'></video>"
    ))
