"""The demo origin's Litestar app: live HLS (public, token-gated, cookie+Referer-gated) and pages.

The same live playlists are served under three prefixes, each guarded differently:
``/live/`` (open), ``/t/{token}/`` (the token the scripted page builds) and ``/secure/``
(the cookie and Referer the embedded player provides).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Final

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import Cookie, State
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import File
from litestar.types import ControllerRouterHandler

from services.demo import live, pages
from services.demo.gallery.routes import Gallery
from services.demo.gallery.routes import router as gallery_router
from services.demo.live import Rendition
from services.demo.media import renditions as default_renditions
from shared.times import SystemClock

PLAYLIST: Final = "application/vnd.apple.mpegurl"
COOKIE: Final = "demo_session"
NO_STORE: Final = {"Cache-Control": "no-cache, no-store"}


class Origin:
    """The state of one demo origin: its media, clock and the secrets its pages hand out."""

    def __init__(self, renditions: list[Rendition], now: Callable[[], datetime],
                 token: str, cookie: str) -> None:
        self.renditions = {r.name: r for r in renditions}
        self.now = now
        self.token = token
        self.cookie = cookie

    def rendition(self, name: str) -> Rendition:
        found = self.renditions.get(name)
        if found is None:
            raise NotFoundException(f"no rendition {name!r}")
        return found

    def check_token(self, token: str) -> None:
        if not secrets.compare_digest(token, self.token):
            raise PermissionDeniedException("bad token")

    def check_embedded(self, request: Request[object, object, State]) -> None:
        referer = request.headers.get("referer", "")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        if not referer.startswith(f"{origin}/embed/"):
            raise PermissionDeniedException("this stream plays only inside its player (Referer)")
        if not secrets.compare_digest(request.cookies.get(COOKIE, ""), self.cookie):
            raise PermissionDeniedException("this stream needs the player's session cookie")


def _origin(request: Request[object, object, State]) -> Origin:
    origin: Origin = request.app.state.origin
    return origin


def _master(origin: Origin) -> Response[str]:
    return Response(live.master_playlist(list(origin.renditions.values())), media_type=PLAYLIST,
                    headers=NO_STORE)


def _media(origin: Origin, rendition: str) -> Response[str]:
    text = live.media_playlist(origin.rendition(rendition), origin.now())
    return Response(text, media_type=PLAYLIST, headers=NO_STORE)


def _segment(origin: Origin, rendition: str, name: str) -> File:
    seq_text, _, ext = name.partition(".")
    if ext != "ts" or not seq_text.isdigit():
        raise NotFoundException(f"no such file {name!r}")
    seq = int(seq_text)
    path = live.segment_file(origin.rendition(rendition), seq, origin.now())
    if path is None:
        raise NotFoundException(f"segment {seq} is not available")
    return File(path, media_type="video/mp2t", headers={"Cache-Control": "max-age=60"},
                content_disposition_type="inline")


def _file(origin: Origin, rendition: str, name: str) -> Response[str] | File:
    """A file under a rendition: its media playlist or one of its segments."""
    if name == "index.m3u8":
        return _media(origin, rendition)
    return _segment(origin, rendition, name)


# Open stream.
@get("/live/master.m3u8", sync_to_thread=False)
def live_master(request: Request[object, object, State]) -> Response[str]:
    return _master(_origin(request))


@get("/live/{rendition:str}/{name:str}", sync_to_thread=False)
def live_file(request: Request[object, object, State], rendition: FromPath[str],
              name: FromPath[str]) -> Response[str] | File:
    return _file(_origin(request), rendition, name)


# Token-gated stream (page b).
@get("/t/{token:str}/master.m3u8", sync_to_thread=False)
def token_master(request: Request[object, object, State], token: FromPath[str]) -> Response[str]:
    origin = _origin(request)
    origin.check_token(token)
    return _master(origin)


@get("/t/{token:str}/{rendition:str}/{name:str}", sync_to_thread=False)
def token_file(request: Request[object, object, State], token: FromPath[str], rendition: FromPath[str],
               name: FromPath[str]) -> Response[str] | File:
    origin = _origin(request)
    origin.check_token(token)
    return _file(origin, rendition, name)


# Cookie- and Referer-gated stream (page c).
@get("/secure/master.m3u8", sync_to_thread=False)
def secure_master(request: Request[object, object, State]) -> Response[str]:
    origin = _origin(request)
    origin.check_embedded(request)
    return _master(origin)


@get("/secure/{rendition:str}/{name:str}", sync_to_thread=False)
def secure_file(request: Request[object, object, State], rendition: FromPath[str],
                name: FromPath[str]) -> Response[str] | File:
    origin = _origin(request)
    origin.check_embedded(request)
    return _file(origin, rendition, name)


# Pages.
@get("/", media_type=MediaType.HTML, sync_to_thread=False)
def index_page(request: Request[object, object, State]) -> str:
    return pages.index(gallery=request.app.state.get("gallery") is not None)


@get("/pages/plain", media_type=MediaType.HTML, sync_to_thread=False)
def plain_page() -> str:
    return pages.plain()


@get("/pages/scripted", media_type=MediaType.HTML, sync_to_thread=False)
def scripted_page(request: Request[object, object, State]) -> str:
    return pages.scripted(_origin(request).token)


#: The header the keyed page needs, and what its value may be.
KEY_HEADER = "x-demo-key"
_KEY = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@get("/pages/keyed", sync_to_thread=False)
def keyed_page(request: Request[object, object, State]) -> Response[str]:
    key = request.headers.get(KEY_HEADER, "")
    if not _KEY.match(key):
        return Response("this page needs the X-Demo-Key header (letters, digits, -)",
                        status_code=403, media_type=MediaType.TEXT)
    return Response(pages.keyed(key), media_type=MediaType.HTML)


@get("/pages/embedded", media_type=MediaType.HTML, sync_to_thread=False)
def embedded_page() -> str:
    return pages.embedded()


@get("/embed/player", sync_to_thread=False)
def embed_player(request: Request[object, object, State]) -> Response[str]:
    cookie = Cookie(key=COOKIE, value=_origin(request).cookie, path="/", httponly=True,
                    samesite="lax")
    return Response(pages.embed_player(), media_type=MediaType.HTML, cookies=[cookie])


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "alive"}


def create_app(*, renditions: list[Rendition] | None = None,
               now: Callable[[], datetime] | None = None,
               token: str | None = None, cookie: str | None = None,
               gallery: bool = False, gallery_secret: bytes | None = None) -> Litestar:
    """Build the demo origin app; tests inject the clock and the secrets. ``gallery`` adds the
    gallery of hard pages under ``/g/`` (``services.demo.gallery``)."""
    origin = Origin(renditions if renditions is not None else default_renditions(),
                    now or SystemClock().now,
                    token or secrets.token_urlsafe(12), cookie or secrets.token_urlsafe(16))
    state: dict[str, object] = {"origin": origin}
    handlers: list[ControllerRouterHandler] = [
        live_master, live_file, token_master, token_file, secure_master, secure_file, index_page,
        plain_page, scripted_page, embedded_page, keyed_page, embed_player, healthz]
    if gallery:
        state["gallery"] = Gallery(list(origin.renditions.values()), origin.now, gallery_secret)
        handlers.append(gallery_router())
    return Litestar(
        route_handlers=handlers,
        state=State(state),
        openapi_config=None, logging_config=None,
    )
