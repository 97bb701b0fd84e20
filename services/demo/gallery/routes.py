"""The gallery's Litestar router (``/g/...``): its pages, their embeds, the token API, the ad
server, and one CDN per pattern, each behind its guard (``guards``), all serving the demo's
live media (``cdn``).

Two "sites" share the one server: a page served under ``127.0.0.1`` embeds players and CDNs
under ``localhost`` (and the other way round), so a browser sees them as cross-site.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import Cookie, State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from services.demo.gallery import guards, pages
from services.demo.gallery.cdn import (
    Layout,
    master_text,
    media_text,
    playlist_type,
    segment_bytes,
    segment_type,
    vod_text,
)
from services.demo.gallery.guards import Refused
from services.demo.gallery.registry import BY_ID, PREFIX
from services.demo.live import Rendition

STATIC: Final = Path(__file__).parent / "static"
NO_STORE: Final = {"Cache-Control": "no-cache, no-store"}
#: Lifetimes of the signed URLs the pages and the token API hand out, in seconds.
PACKED_TTL: Final = 1800
EDGEAUTH_TTL: Final = 600
XHR_TOKEN_TTL: Final = 90
EDGE_TTL: Final = 120
SESSION_COOKIE: Final = "gsid"
CLICK_VIDEO: Final = "k7Qm2x"
PACKED_PREFIX: Final = f"{PREFIX}/cdn/packed/hls/f1-live/"
BASE64_ACL: Final = f"{PREFIX}/cdn/base64/live/*"
GIF_1X1: Final = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00"
                  b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_STATIC_TYPES: Final = {".js": "application/javascript", ".svg": "image/svg+xml"}

Req = Request[object, object, State]


class Gallery:
    """The gallery's state: the demo's media and clock, and the secret its tokens are signed
    with (tests inject all three)."""

    def __init__(self, renditions: list[Rendition], now: Callable[[], datetime],
                 secret: bytes | None = None) -> None:
        self.renditions = renditions
        self.by_name = {r.name: r for r in renditions}
        self.now = now
        self.secret = secret or secrets.token_bytes(32)

    def timestamp(self) -> int:
        return int(self.now().timestamp())


def _gallery(request: Req) -> Gallery:
    gallery: Gallery = request.app.state.gallery
    return gallery


def own_origin(request: Req) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def other_origin(request: Req) -> str:
    return f"{request.url.scheme}://{guards.other_netloc(request.url.netloc)}"


def _html(text: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(text, media_type=MediaType.HTML, headers=NO_STORE, cookies=cookies or [])


# The CDNs: where each puts the stream, and the check it makes.
Guard = Callable[[Gallery, Req], None]


@dataclass(frozen=True)
class Cdn:
    layout: Layout
    guard: Guard


def _same_site(g: Gallery, r: Req) -> None:
    guards.referer_from(r.headers.get("referer", ""), [own_origin(r)])


def _under(path: str) -> Guard:
    def guard(g: Gallery, r: Req) -> None:
        guards.referer_under(r.headers.get("referer", ""), own_origin(r) + path)
    return guard


def _packed(g: Gallery, r: Req) -> None:
    q = r.query_params
    guards.check_secure_link(g.secret, PACKED_PREFIX, q.get("md5", ""), q.get("expires", ""),
                             g.timestamp())


def _edgeauth(g: Gallery, r: Req) -> None:
    guards.check_edgeauth(g.secret, r.query_params.get("hdnts", ""), r.url.path, g.timestamp())


def _token(scope: str) -> Guard:
    def guard(g: Gallery, r: Req) -> None:
        q = r.query_params
        guards.check_timed_token(g.secret, scope, q.get("token", ""), q.get("expires", ""),
                                 g.timestamp())
    return guard


def _check_chain(g: Gallery, chain: str) -> None:
    """The deep-iframes chain id (``nonce.signature``) the page minted."""
    nonce, _, sig = chain.partition(".")
    if not nonce or not secrets.compare_digest(sig, guards.sign(g.secret, "deep", nonce)):
        raise Refused("this embed link is invalid")


def _deep_player(g: Gallery, r: Req) -> None:
    """The last hop's Referer (its full URL) and the player's Origin, from the other site."""
    referer = r.headers.get("referer", "")
    parts = urlsplit(referer)
    chain = parse_qs(parts.query).get("c", [""])[0]
    _check_chain(g, chain)
    guards.referer_is(referer, f"{other_origin(r)}{PREFIX}/deep/3?c={chain}")
    guards.origin_is(r.headers.get("origin", ""), other_origin(r))


def _ua_origin(g: Gallery, r: Req) -> None:
    guards.browser_agent(r.headers.get("user-agent", ""))
    guards.origin_is(r.headers.get("origin", ""), other_origin(r))


_LIVE: Final = {"360p": "360p/index.m3u8", "180p": "180p/index.m3u8"}
CDNS: Final[dict[str, Cdn]] = {
    "noext": Cdn(Layout("live/mono.css", {"360p": "hd/stream", "180p": "sd/chunks.txt"},
                        segment="s/{seq}"), _same_site),
    "packed": Cdn(Layout("hls/f1-live/index.m3u8", _LIVE, carry_query=True), _packed),
    "base64": Cdn(Layout("live/playlist.m3u8", {"360p": "360p/chunklist.m3u8",
                                                "180p": "180p/chunklist.m3u8"},
                         segment="media_{seq}.ts", carry_query=True), _edgeauth),
    "player-config": Cdn(Layout("abr/master.m3u8", _LIVE), _under(f"{PREFIX}/p/player-config")),
    "docwrite": Cdn(Layout("live/master.m3u8", _LIVE), _under(f"{PREFIX}/embed/docwrite/player")),
    "deep": Cdn(Layout("live/master.m3u8", _LIVE), _deep_player),
    "xhr-token": Cdn(Layout("live/master.m3u8", _LIVE, carry_query=True), _token("xhr")),
    "click": Cdn(Layout(f"v/{CLICK_VIDEO}/master.m3u8", _LIVE),
                 _under(f"{PREFIX}/embed/click/")),
    "ua-origin": Cdn(Layout("live/master.m3u8", _LIVE), _ua_origin),
    "decoy-vod": Cdn(Layout("live/master.m3u8", _LIVE), _same_site),
    "cloaked": Cdn(Layout("live/master.m3u8", _LIVE, segment="{seq}.png", cloak=True),
                   _same_site),
    "edge": Cdn(Layout("live/master.m3u8", _LIVE, carry_query=True), _token("edge")),
}


def _cors(request: Req) -> dict[str, str]:
    """What a CDN sends a cross-origin player of one of the two sites (XHR needs it)."""
    origin = request.headers.get("origin", "")
    if origin in (own_origin(request), other_origin(request)):
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}
    return {}


@get("/cdn/{name:str}/{path:path}", sync_to_thread=False)
def cdn_file(request: Req, name: FromPath[str], path: FromPath[str]) -> Response[bytes | str]:
    g = _gallery(request)
    cdn = CDNS.get(name)
    found = cdn.layout.find(path.lstrip("/")) if cdn else None
    if cdn is None or found is None:
        raise NotFoundException(f"no such file {path!r}")
    kind, rendition, seq = found
    cdn.guard(g, request)
    headers = {**NO_STORE, **_cors(request)}
    query = request.scope["query_string"].decode("latin-1")
    if kind == "master":
        return Response(master_text(cdn.layout, g.renditions, query),
                        media_type=playlist_type(path), headers=headers)
    r = g.by_name[rendition or ""]
    if kind == "media":
        return Response(media_text(cdn.layout, r, g.now(), query),
                        media_type=playlist_type(path), headers=headers)
    body = segment_bytes(r, seq or 0, g.now(), cdn.layout.cloak)
    if body is None:
        raise NotFoundException(f"segment {seq} is not available")
    return Response(body, media_type=segment_type(path, cdn.layout.cloak),
                    headers={**headers, "Cache-Control": "max-age=60"})


# Pages.
def _packed_page(g: Gallery, r: Req) -> Response[str]:
    expires = g.timestamp() + PACKED_TTL
    md5 = guards.secure_link(g.secret, PACKED_PREFIX, expires)
    stream = f"{own_origin(r)}{PACKED_PREFIX}index.m3u8?md5={md5}&expires={expires}"
    return _html(pages.packed(stream, f"{own_origin(r)}{PREFIX}/ads/vast.xml?zone=48213"))


def _base64_page(g: Gallery, r: Req) -> Response[str]:
    token = guards.edgeauth(g.secret, BASE64_ACL, g.timestamp() + EDGEAUTH_TTL)
    stream = f"{own_origin(r)}{PREFIX}/cdn/base64/live/playlist.m3u8?hdnts={token}"
    return _html(pages.base64_page(stream, f"{own_origin(r)}{PREFIX}/ads/vast.xml?zone=9911"))


def _deep_page(g: Gallery, r: Req) -> Response[str]:
    nonce = secrets.token_urlsafe(9)
    chain = f"{nonce}.{guards.sign(g.secret, 'deep', nonce)}"
    return _html(pages.deep_page(f"{PREFIX}/deep/1?c={chain}"))


def _xhr_page(g: Gallery, r: Req) -> Response[str]:
    nonce = secrets.token_urlsafe(12)
    cookie = Cookie(key=SESSION_COOKIE, value=f"{nonce}.{guards.sign(g.secret, 'gsid', nonce)}",
                    path=f"{PREFIX}/", httponly=True, samesite="lax")
    return _html(pages.xhr_token(), cookies=[cookie])


def _redirect_page(g: Gallery, r: Req) -> Response[str]:
    return _html(pages.redirect_cdn(f"{PREFIX}/go/redirect-cdn/master.m3u8"))


PAGES: Final[dict[str, Callable[[Gallery, Req], Response[str]]]] = {
    "noext": lambda g, r: _html(pages.noext(f"{PREFIX}/cdn/noext/live/mono.css")),
    "packed": _packed_page,
    "base64": _base64_page,
    "player-config": lambda g, r: _html(pages.player_config(r.url.scheme, r.url.netloc)),
    "docwrite": lambda g, r: _html(pages.docwrite(f"{PREFIX}/embed/docwrite/frame?ch=f1&v=3")),
    "deep-iframes": _deep_page,
    "xhr-token": _xhr_page,
    "click-to-play": lambda g, r: _html(pages.click_page(
        f"{other_origin(r)}{PREFIX}/embed/click/{CLICK_VIDEO}?autoplay=0")),
    "ua-origin": lambda g, r: _html(pages.ua_origin(
        f"{other_origin(r)}{PREFIX}/cdn/ua-origin/live/master.m3u8")),
    "decoy-vod": lambda g, r: _html(pages.decoy(f"{PREFIX}/ads/vod/preroll.m3u8",
                                                f"{PREFIX}/cdn/decoy-vod/live/master.m3u8")),
    "cloaked": lambda g, r: _html(pages.cloaked(f"{PREFIX}/cdn/cloaked/live/master.m3u8")),
    "redirect-cdn": _redirect_page,
}


@get("/", sync_to_thread=False)
def index(request: Req) -> Response[str]:
    return _html(pages.index(own_origin(request)))


@get("/p/{pattern:str}", sync_to_thread=False)
def page(request: Req, pattern: FromPath[str]) -> Response[str]:
    if pattern not in BY_ID:
        raise NotFoundException(f"no gallery page {pattern!r}")
    return PAGES[pattern](_gallery(request), request)


# Embeds: each checks who embeds it, as embed hosts do.
@get("/embed/docwrite/frame", sync_to_thread=False)
def docwrite_frame(request: Req) -> Response[str]:
    guards.referer_under(request.headers.get("referer", ""),
                         f"{own_origin(request)}{PREFIX}/p/docwrite")
    return _html(pages.docwrite_frame("f1live"))


@get("/embed/docwrite/player", sync_to_thread=False)
def docwrite_player(request: Req) -> Response[str]:
    guards.referer_under(request.headers.get("referer", ""),
                         f"{own_origin(request)}{PREFIX}/embed/docwrite/frame")
    return _html(pages.frame_player(f"{PREFIX}/cdn/docwrite/live/master.m3u8"))


@get("/deep/{level:int}", sync_to_thread=False)
def deep_hop(request: Req, level: FromPath[int], c: FromQuery[str] = "") -> Response[str]:
    g = _gallery(request)
    if level not in (1, 2, 3):
        raise NotFoundException(f"no hop {level}")
    own = own_origin(request)
    referer = request.headers.get("referer", "")
    _check_chain(g, c)
    if level == 1:  # the page itself, whatever its query
        guards.referer_is(urlsplit(referer)._replace(query="", fragment="").geturl(),
                          f"{own}{PREFIX}/p/deep-iframes")
    else:
        guards.referer_is(referer, f"{own}{PREFIX}/deep/{level - 1}?c={c}")
    if level < 3:
        return _html(pages.deep_hop(level, f"{PREFIX}/deep/{level + 1}?c={c}"))
    # The player asks its CDN, on the other site, with its full URL as Referer.
    return _html(pages.frame_player(f"{other_origin(request)}{PREFIX}/cdn/deep/live/master.m3u8",
                                    referrer_policy="no-referrer-when-downgrade"))


@get("/api/token", sync_to_thread=False)
def token_api(request: Req) -> Response[str]:
    g = _gallery(request)
    nonce, _, sig = request.cookies.get(SESSION_COOKIE, "").partition(".")
    if not nonce or not secrets.compare_digest(sig, guards.sign(g.secret, "gsid", nonce)):
        return Response(json.dumps({"ok": False, "error": "no session"}), status_code=403,
                        media_type=MediaType.JSON)
    if request.headers.get("x-requested-with", "") != "XMLHttpRequest":
        return Response(json.dumps({"ok": False, "error": "bad request"}), status_code=403,
                        media_type=MediaType.JSON)
    expires = g.timestamp() + XHR_TOKEN_TTL
    body = {"ok": True, "token": guards.timed_token(g.secret, "xhr", expires),
            "expires": expires, "ttl": XHR_TOKEN_TTL}
    return Response(json.dumps(body), media_type=MediaType.JSON, headers=NO_STORE)


@get("/embed/click/{video:str}", sync_to_thread=False)
def click_embed(request: Req, video: FromPath[str]) -> Response[str]:
    if video != CLICK_VIDEO:
        raise NotFoundException("no such video")
    # Embeddable only on the partner site (the other name), never opened by itself.
    guards.referer_from(request.headers.get("referer", ""), [other_origin(request)],
                        "the partner site")
    return _html(pages.click_embed(f"{PREFIX}/cdn/click/v/{CLICK_VIDEO}/master.m3u8"))


@get("/go/redirect-cdn/master.m3u8", sync_to_thread=False)
def redirect_cdn(request: Req) -> Response[str] | Redirect:
    g = _gallery(request)
    guards.referer_from(request.headers.get("referer", ""), [own_origin(request)])
    expires = g.timestamp() + EDGE_TTL
    token = guards.timed_token(g.secret, "edge", expires)
    return Redirect(f"{other_origin(request)}{PREFIX}/cdn/edge/live/master.m3u8"
                    f"?expires={expires}&token={token}", status_code=302, headers=NO_STORE)


# Static files, the ad server and the chat widget: the noise around the players.
@get("/static/{name:str}", sync_to_thread=False)
def static(name: FromPath[str]) -> Response[str]:
    if name == "poster.svg":
        return Response(pages.POSTER, media_type="image/svg+xml")
    path = STATIC / name
    if "/" in name or not path.is_file():
        raise NotFoundException(f"no static file {name!r}")
    return Response(path.read_text(), media_type=_STATIC_TYPES.get(path.suffix, "text/plain"),
                    headers={"Cache-Control": "max-age=3600"})


@get("/ads/{path:path}", sync_to_thread=False)
def ads(request: Req, path: FromPath[str]) -> Response[str] | Response[bytes]:
    g = _gallery(request)
    q = request.query_params
    ad = g.renditions[-1]  # the ad is small: the lowest rendition
    if path == "/invoke.js":
        return Response((STATIC / "invoke.js").read_text(), media_type="application/javascript")
    if path == "/banner":
        return _html(pages.banner(q.get("key", ""), int(q.get("w", "728") or 728) % 2000,
                                  int(q.get("h", "90") or 90) % 2000))
    if path == "/vast.xml":
        return Response(pages.vast(q.get("zone", "0")), media_type="application/xml")
    if path == "/px.gif":
        return Response(GIF_1X1, media_type="image/gif", headers=NO_STORE)
    if path == "/landing":
        return _html("<!DOCTYPE html><title>Bonus</title><h1>Claim your sprint bonus</h1>")
    if path == "/vod/preroll.m3u8":
        return Response(vod_text(ad, 3, "{seq}.ts"), media_type=playlist_type(path),
                        headers=NO_STORE)
    name = path.removeprefix("/vod/")
    if name.endswith(".ts") and name[:-3] in ("0", "1", "2"):
        return Response((ad.folder / name).read_bytes(), media_type="video/mp2t")
    raise NotFoundException(f"no ad {path!r}")


@get("/widgets/chat", sync_to_thread=False)
def chat() -> Response[str]:
    return _html(pages.chat())


def router() -> Router:
    """The gallery under ``/g``; the app puts a :class:`Gallery` in ``state.gallery``."""
    return Router(path=PREFIX, route_handlers=[
        index, page, cdn_file, docwrite_frame, docwrite_player, deep_hop, token_api, click_embed,
        redirect_cdn, static, ads, chat])
