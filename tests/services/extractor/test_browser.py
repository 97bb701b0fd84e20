"""The browser extractor: real Chromium on the demo pages and on pages that hide playlists the
ways real embed sites do (no extension, mono.css, cross-site iframes, click to play, popups,
late iframes), behind the egress proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import HttpMethod, Litestar, MediaType, Request, Response, get, route
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Stream

from services.extractor.extractors import browser
from services.extractor.extractors.browser import CHROMIUM, BrowserExtractor
from services.extractor.probe import probe
from services.extractor.registry import Context, ExtractionError, Found
from shared.egress import client
from shared.egress_proxy import EgressProxy
from tests.procs import alive, children_of, identity, still_running
from tests.services.extractor.conftest import COOKIE, TOKEN, allowing
from tests.shared.test_egress import Origin

pytestmark = pytest.mark.timeout(90)


async def test_a_javascript_built_url_is_captured_from_the_network(ctx: Context, demo: str) -> None:
    """Page (b): the URL only exists after the script runs; Chromium's request reveals it."""
    found = (await BrowserExtractor().extract(f"{demo}/pages/scripted", ctx))[0]
    assert found.url == f"{demo}/t/{TOKEN}/master.m3u8"
    result = await probe(ctx.client, ctx.policy, found.url, headers=found.headers,
                         cookies=found.cookies)
    assert result.live


async def test_an_iframe_player_gives_its_referer_and_cookie(ctx: Context, demo: str) -> None:
    """Page (c): the player's request carries the iframe as Referer and the cookie it set."""
    found = (await BrowserExtractor().extract(f"{demo}/pages/embedded", ctx))[0]
    assert found.url == f"{demo}/secure/master.m3u8"
    assert found.headers == {"Referer": f"{demo}/embed/player", "User-Agent": ctx.user_agent}
    assert found.cookies.get("demo_session") == COOKIE


async def test_chromium_cannot_reach_a_port_outside_the_allow_list(
        serve: Callable[[Litestar], str]) -> None:
    """Every request of the page goes through the policy: the forbidden port sees nothing."""
    forbidden = Origin()
    forbidden_base = serve(forbidden.app())

    @get("/page", media_type=MediaType.HTML, sync_to_thread=False)
    def page() -> str:
        return (f"<html><body><img src='{forbidden_base}/pixel.png'>"
                f"<script>fetch('{forbidden_base}/x.m3u8')</script></body></html>")

    allowed = serve(Litestar([page], openapi_config=None, logging_config=None))
    policy = allowing(allowed)
    async with client(policy) as http, EgressProxy(policy) as proxy:
        ctx = Context(client=http, policy=policy, proxy=proxy.url, deadline=5.0)
        found = (await BrowserExtractor().extract(f"{allowed}/page", ctx))[0]
        # The page asked for a playlist, but the proxy refused it before any connection.
        assert found.url == f"{forbidden_base}/x.m3u8"
        with pytest.raises(ExtractionError):
            await BrowserExtractor().extract(f"{forbidden_base}/page", ctx)
        assert proxy.refused >= 2
    assert forbidden.hits == []


async def test_a_stuck_chromium_is_killed_with_its_process_group(ctx: Context, demo: str) -> None:
    """kill() takes down Chromium and all its helper processes, leaving no zombie."""
    await BrowserExtractor().extract(f"{demo}/pages/plain", ctx)
    process = CHROMIUM.process
    assert process is not None
    helpers = [identity(p) for p in children_of(process.pid)]
    assert helpers, "Chromium runs helper processes"
    CHROMIUM.kill()
    await process.wait()
    assert not alive(process.pid)
    for _ in range(50):  # the kernel delivers the group kill at once; reaping may lag a little
        if not [h for h in helpers if still_running(h)]:
            break
        await asyncio.sleep(0.1)
    assert not [h for h in helpers if still_running(h)]


# Pages that hide their playlist the ways real embed sites do, served by one test origin under
# two loopback names: ``127.0.0.1`` (the site) and ``localhost`` (another site, for embeds).

MASTER = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nv1.m3u8\n")
MEDIA = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
         "#EXTINF:2.0,\nseg7.ts\n")
AD = MEDIA + "#EXT-X-ENDLIST\n"
HLS = "application/vnd.apple.mpegurl"
SECRET = "s3cr3t-token"


def _xhr(url: str, headers: str = "{}", credentials: bool = False) -> str:
    """A player's script: GET ``url`` with XHR and the given headers."""
    return (f"(function(){{var x=new XMLHttpRequest();x.open('GET','{url}');"
            f"x.withCredentials={'true' if credentials else 'false'};"
            f"var h={headers};for(var k in h)x.setRequestHeader(k,h[k]);x.send();}})()")


class Site:
    """The test origin: pages, embeds and their playlists; it records what it was asked."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, dict[str, str]]] = []
        self.base = ""

    @property
    def other(self) -> str:
        return self.base.replace("127.0.0.1", "localhost")

    def asked(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.hits if p == path]

    def app(self) -> Litestar:
        site = self

        def html(body: str, cookie: str = "") -> Response[str]:
            headers = {"Set-Cookie": cookie} if cookie else {}
            return Response(f"<!doctype html><html><body>{body}</body></html>",
                            media_type=MediaType.HTML, headers=headers)

        def text(body: str, content_type: str, *, cors: bool = False) -> Response[str]:
            headers = {"Access-Control-Allow-Origin": site.other,
                       "Access-Control-Allow-Credentials": "true"} if cors else {}
            return Response(body, media_type=content_type, headers=headers)

        def slow(body: str, content_type: str) -> Stream:
            """Headers at once, the body's end 1.5 s later (a slow CDN, or a loaded machine)."""
            async def chunks() -> AsyncIterator[bytes]:
                yield body[:10].encode()
                await asyncio.sleep(1.5)
                yield body[10:].encode()
            return Stream(chunks(), media_type=content_type)

        @route("/{path:path}", http_method=[HttpMethod.GET, HttpMethod.OPTIONS],
               sync_to_thread=False)
        def handle(request: Request[object, object, State], path: FromPath[str]) -> Response[Any]:
            path = path.lstrip("/")
            if request.method == HttpMethod.OPTIONS:  # the CORS preflight of X-Token
                return Response("", status_code=204, headers={
                    "Access-Control-Allow-Origin": site.other,
                    "Access-Control-Allow-Headers": "X-Token",
                    "Access-Control-Allow-Credentials": "true"})
            site.hits.append((path, dict(request.headers)))
            pages: dict[str, Callable[[], Response[Any]]] = {
                # An extensionless playlist, known only by its Content-Type; a first-party cookie.
                "/noext/page": lambda: html(f"<script>{_xhr('/noext/live')}</script>",
                                            "visit=v-42; Path=/"),
                "/noext/live": lambda: text(MASTER, HLS),
                # A playlist named mono.css in text/css, next to a real style sheet and JSON.
                "/css/page": lambda: html(
                    "<link rel=stylesheet href='/css/site.css'>"
                    "<script>fetch('/css/config.json');fetch('/css/mono.css')</script>"),
                "/css/site.css": lambda: text("body{margin:0}", "text/css"),
                "/css/config.json": lambda: text('{"player":"hls"}', "application/json"),
                "/css/mono.css": lambda: text(MEDIA, "text/css"),
                # A cross-site iframe whose player asks the CDN (back on 127.0.0.1) with a token.
                "/xs/page": lambda: html(f"<iframe src='{site.other}/xs/player' width=640 "
                                         "height=360></iframe>", "site=s-1; Path=/"),
                "/xs/player": lambda: html("<script>" + _xhr(
                    f"{site.base}/xs/cdn/live", f"{{'X-Token':'{SECRET}'}}") + "</script>"),
                "/xs/cdn/live": lambda: text(MASTER, HLS, cors=True),
                # Click to play: the overlay in a cross-site iframe loads the playlist.
                "/click/page": lambda: html(f"<iframe src='{site.other}/click/player' width=800 "
                                            "height=450 style='border:0'></iframe>"),
                "/click/player": lambda: html(
                    "<div style='position:relative;width:780px;height:430px;background:#000'>"
                    "<video style='width:100%;height:100%'></video>"
                    "<div class='overlay' aria-label='Play video' role=button style='position:"
                    "absolute;left:340px;top:165px;width:100px;height:100px;background:#c00'"
                    f" onclick=\"this.remove();{_xhr('/click/stream/index')}\"></div></div>"),
                "/click/stream/index": lambda: text(MEDIA, "application/x-mpegURL"),
                # An ad layer over the player opens a popup on the first click; dialogs on load.
                "/popup/page": lambda: html(
                    "<script>alert('Welcome!');confirm('Cookies?');var ad=null;</script>"
                    "<div id=ad style='position:fixed;inset:0;z-index:9;background:"
                    "rgba(0,0,0,0.01)' onclick=\"ad=window.open('/popup/ad','_blank');"
                    "this.remove();setTimeout(function(){fetch('/popup/closed/'+ad.closed)},"
                    "700)\"></div>"
                    "<button class='btn-play' style='margin:200px;width:120px;height:60px'"
                    f" onclick=\"{_xhr('/popup/hls/master.txt')}\">\u25b6</button>"),
                "/popup/ad": lambda: html("<script>setInterval(function(){fetch("
                                          "'/popup/beat')},100)</script>"),
                "/popup/closed/true": lambda: text("ok", "text/plain"),
                "/popup/closed/false": lambda: text("ok", "text/plain"),
                "/popup/beat": lambda: text("ok", "text/plain"),
                "/popup/hls/master.txt": lambda: text(MASTER, "text/plain"),
                # An iframe inserted 3 s after load, whose player then asks.
                "/late/page": lambda: html(
                    "<script>setTimeout(function(){var f=document.createElement('iframe');"
                    f"f.src='{site.other}/late/player';document.body.appendChild(f)}},3000)"
                    "</script>"),
                "/late/player": lambda: html(f"<script>{_xhr('/late/live.m3u8')}</script>"),
                "/late/live.m3u8": lambda: text(MEDIA, HLS),
                # An ad's media playlist first (its body slow to finish), then the master and
                # its variant.
                "/order/page": lambda: html(
                    f"<script>{_xhr('/order/ad')};setTimeout(function(){{"
                    f"{_xhr('/order/master')}}},200);setTimeout(function(){{"
                    f"{_xhr('/order/v1.m3u8')}}},400)</script>"),
                "/order/ad": lambda: slow(AD, HLS),
                "/order/master": lambda: text(MASTER, "application/octet-stream"),
                "/order/v1.m3u8": lambda: text(MEDIA, HLS),
            }
            if f"/{path}" not in pages:
                return Response("not here", status_code=404, media_type=MediaType.TEXT)
            return pages[f"/{path}"]()

        return Litestar([handle], openapi_config=None, logging_config=None)


@pytest.fixture
async def site(serve: Callable[[Litestar], str]) -> Site:
    """The test origin, served on a loopback port."""
    s = Site()
    s.base = serve(s.app())
    return s


@pytest.fixture
async def site_ctx(site: Site) -> AsyncIterator[Context]:
    """A context whose egress policy allows the origin under both loopback names."""
    policy = allowing(site.base, site.other)
    port = int(site.base.rsplit(":", 1)[1])
    assert await policy.resolve("localhost", port) == ["127.0.0.1"]
    assert await policy.resolve("127.0.0.1", port) == ["127.0.0.1"]
    async with client(policy) as http, EgressProxy(policy) as proxy:
        yield Context(client=http, policy=policy, deadline=15.0, proxy=proxy.url,
                      user_agent="Mozilla/5.0 (Slipstream test viewer) Chrome/156.0.0.0")


async def _timed(site: Site, ctx: Context, path: str) -> tuple[list[Found], float]:
    """The extractor's candidates for a page of the site, and the seconds they took (Chromium
    already running)."""
    await CHROMIUM.get(ctx.chromium, ctx.proxy)
    started = time.monotonic()
    found = await BrowserExtractor().extract(f"{site.base}{path}", ctx)
    return found, time.monotonic() - started


async def test_an_extensionless_playlist_is_known_by_its_content_type(
        site: Site, site_ctx: Context) -> None:
    """A playlist URL without .m3u8, served as application/vnd.apple.mpegurl, is a candidate
    with the page's Referer, the context's User-Agent and the page's cookie."""
    found, _ = await _timed(site, site_ctx, "/noext/page")
    assert [f.url for f in found] == [f"{site.base}/noext/live"]
    assert found[0].headers == {"User-Agent": site_ctx.user_agent,
                                "Referer": f"{site.base}/noext/page"}
    assert found[0].cookies == {"visit": "v-42"}
    assert found[0].via == "network page: master"
    assert site.asked("noext/live")[0]["user-agent"] == site_ctx.user_agent


async def test_a_playlist_named_mono_css_is_known_by_its_body(
        site: Site, site_ctx: Context) -> None:
    """mono.css in text/css starting #EXTM3U is a candidate; a real style sheet and JSON are not."""
    found, _ = await _timed(site, site_ctx, "/css/page")
    assert [f.url for f in found] == [f"{site.base}/css/mono.css"]
    assert found[0].via == "network page: media"
    assert site.asked("css/site.css")
    assert site.asked("css/config.json")


async def test_a_cross_site_iframe_player_gives_its_token_origin_and_referer(
        site: Site, site_ctx: Context) -> None:
    """A player in a cross-site iframe (another loopback name) asks the CDN with X-Token: the
    candidate carries X-Token, the player's Origin and Referer (its origin only, as Chromium
    sends cross-origin), the User-Agent, and the CDN site's cookie."""
    found, _ = await _timed(site, site_ctx, "/xs/page")
    assert [f.url for f in found] == [f"{site.base}/xs/cdn/live"]
    assert found[0].headers == {"User-Agent": site_ctx.user_agent, "X-Token": SECRET,
                                "Origin": site.other, "Referer": f"{site.other}/"}
    assert found[0].cookies == {"site": "s-1"}
    assert found[0].via == "network iframe: master"
    sent = site.asked("xs/cdn/live")[0]  # what the player really sent, as the candidate says
    assert (sent["x-token"], sent["origin"], sent["referer"]) == (
        SECRET, site.other, f"{site.other}/")


async def test_a_click_on_the_play_overlay_in_a_cross_site_iframe_starts_the_stream(
        site: Site, site_ctx: Context) -> None:
    """Nothing plays until the overlay inside the cross-site iframe is clicked, as a viewer
    would: the playlist requested then is the candidate."""
    found, elapsed = await _timed(site, site_ctx, "/click/page")
    assert [f.url for f in found] == [f"{site.other}/click/stream/index"]
    assert found[0].headers["Referer"] == f"{site.other}/click/player"
    assert elapsed < 9  # the first round of clicks did it (2 s wait, click, 1.5 s grace)


async def test_popups_are_closed_and_dialogs_dismissed_while_clicking_to_play(
        site: Site, site_ctx: Context) -> None:
    """Dialogs on load do not stop the page; the ad layer's first click opens a popup, closed
    at once; the next click reaches the play button."""
    found, _ = await _timed(site, site_ctx, "/popup/page")
    assert [f.url for f in found][:1] == [f"{site.base}/popup/hls/master.txt"]
    assert site.asked("popup/closed/true"), "the ad layer's popup was opened, then closed"
    assert len(site.asked("popup/beat")) < 5  # closed before it could run for long


async def test_a_player_in_an_iframe_inserted_late_is_still_watched(
        site: Site, site_ctx: Context) -> None:
    """An iframe added 3 s after load, whose player asks for the playlist, is caught."""
    found, elapsed = await _timed(site, site_ctx, "/late/page")
    assert [f.url for f in found] == [f"{site.other}/late/live.m3u8"]
    assert found[0].headers["Referer"] == f"{site.other}/late/player"
    assert elapsed >= 3


async def test_master_playlists_come_before_media_playlists_seen_earlier(
        site: Site, site_ctx: Context) -> None:
    """An ad's media playlist seen first, then a master (octet-stream) and its variant: the
    master is tried first, then the media playlists in the order the page asked for them (the
    ad first, although its body ends after the variant's: the order is the page's, not that of
    the body reads)."""
    found, _ = await _timed(site, site_ctx, "/order/page")
    assert [f.url for f in found] == [f"{site.base}/order/master", f"{site.base}/order/ad",
                                      f"{site.base}/order/v1.m3u8"]
    assert [f.via for f in found] == ["network page: master", "network page: media",
                                      "network page: media"]


def test_identity_keeps_what_a_stream_needs() -> None:
    """Identity headers are kept in browser spelling; Accept, Sec-* and Cookie are not."""
    sent = {"user-agent": "UA", "referer": "http://a/", "origin": "http://a", "accept": "*/*",
            "x-requested-with": "XMLHttpRequest", "sec-fetch-mode": "cors", "cookie": "a=1",
            "authorization": "Bearer t", "x-custom": "c"}
    assert browser.identity(sent, "fallback") == {
        "User-Agent": "UA", "Referer": "http://a/", "Origin": "http://a",
        "X-Requested-With": "XMLHttpRequest", "Authorization": "Bearer t", "X-Custom": "c"}
    assert browser.identity({"accept": "*/*", "dnt": "1"}, "fallback", {"DNT": "1"}) == {
        "User-Agent": "fallback", "Dnt": "1"}
    assert browser.sent_cookies("a=1; b=x=y; junk") == {"a": "1", "b": "x=y"}


@pytest.mark.parametrize(("content_type", "read"), [
    ("text/css", True), ("text/plain; charset=utf-8", True), ("text/html", True), ("", True),
    ("application/octet-stream", True), ("image/png", False), ("font/woff2", False),
    ("video/mp2t", False), ("application/json", False), ("application/javascript", False)])
def test_which_answers_are_read_for_a_playlist_body(content_type: str, read: bool) -> None:
    """Text-like answers may be playlists in disguise; pictures, fonts and media are not read."""
    assert browser.textlike(content_type) is read


def test_a_master_is_ranked_before_a_media_playlist() -> None:
    """#EXT-X-STREAM-INF makes a master; #EXTM3U alone a media playlist; anything else none."""
    assert browser.playlist_rank(MASTER.encode()) == browser.MASTER
    assert browser.playlist_rank(b"\xef\xbb\xbf" + MEDIA.encode()) == browser.MEDIA
    assert browser.playlist_rank(b"<html>#EXTM3U") is None
