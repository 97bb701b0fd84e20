"""The http extractor: the demo pages, iframes followed four deep with each hop's Referer and
cookies, the identity a candidate carries (User-Agent, Referer, Origin), bounds on how many
frames it follows, and candidates ranked and capped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import Cookie, State
from litestar.params import FromPath

from services.extractor.extractors.http import (
    MAX_IFRAMES,
    HttpExtractor,
    origin,
    referer,
)
from services.extractor.probe import probe
from services.extractor.registry import MAX_CANDIDATES, Context, ExtractionError
from services.extractor.resolve import resolve
from shared.egress import EgressPolicy, client
from shared.identity import BROWSER_USER_AGENT
from tests.services.extractor.conftest import COOKIE
from tests.shared.test_egress import Origin

Req = Request[object, object, State]
LIVE = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n"
        "#EXTINF:2.0,\ns100.ts\n#EXTINF:2.0,\ns101.ts\n#EXTINF:2.0,\ns102.ts\n")
KEY = "k7"


async def test_plain_page_gives_the_playlist_in_its_video_tag(ctx: Context, demo: str) -> None:
    """Page (a): the <source> playlist, absolute, with the page as Referer and its Origin."""
    found = (await HttpExtractor().extract(f"{demo}/pages/plain", ctx))[0]
    assert found.url == f"{demo}/live/master.m3u8"
    assert found.headers == {"User-Agent": BROWSER_USER_AGENT, "Referer": f"{demo}/pages/plain",
                             "Origin": demo}
    assert found.title == "Demo stream: plain"
    assert found.via == "source tag"


async def test_iframe_player_gives_playlist_referer_and_cookie(ctx: Context, demo: str) -> None:
    """Page (c): the iframe is followed; its Referer and cookie are what the origin wants."""
    found = (await HttpExtractor().extract(f"{demo}/pages/embedded", ctx))[0]
    assert found.url == f"{demo}/secure/master.m3u8"
    assert found.headers == {"User-Agent": BROWSER_USER_AGENT, "Referer": f"{demo}/embed/player",
                             "Origin": demo}
    assert found.cookies == {"demo_session": COOKIE}
    assert found.via == "iframe 1 > source tag"
    result = await probe(ctx.client, ctx.policy, found.url, headers=found.headers,
                         cookies=found.cookies)
    assert result.live
    assert len(result.variants) == 2


async def test_script_built_urls_are_not_guessed(ctx: Context, demo: str) -> None:
    """Page (b) builds its URL from char codes at run time: the http extractor finds nothing."""
    with pytest.raises(ExtractionError, match="no playlist"):
        await HttpExtractor().extract(f"{demo}/pages/scripted", ctx)


async def test_a_page_outside_the_allow_list_is_never_fetched(serve: Callable[[Litestar], str]) -> None:
    """A loopback page not allow-listed is refused and its server records zero requests."""
    origin_app = Origin()
    base = serve(origin_app.app())
    policy = EgressPolicy()
    async with client(policy) as http:
        with pytest.raises(ExtractionError, match="egress policy"):
            await HttpExtractor().extract(f"{base}/page", Context(client=http, policy=policy))
    assert origin_app.hits == []


def _html(body: str, cookies: list[Cookie] | None = None, head: str = "") -> Response[str]:
    return Response(f"<!doctype html><html><head><title>Hop</title>{head}</head><body>{body}"
                    "</body></html>", media_type=MediaType.HTML, cookies=cookies or [])


def _own(request: Req) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _other(request: Req) -> str:
    """The same server under its other loopback name (another host for cookies and CORS)."""
    netloc = request.url.netloc
    swapped = (netloc.replace("127.0.0.1", "localhost") if "127.0.0.1" in netloc
               else netloc.replace("localhost", "127.0.0.1"))
    return f"{request.url.scheme}://{swapped}"


@get("/deep/{level:int}", sync_to_thread=False)
def deep(request: Req, level: FromPath[int]) -> Response[str]:
    """Hop ``level`` of an embed chain: each wants the previous hop's URL as Referer and
    sets a cookie; hop 4 is the player, whose CDN is on the other host."""
    hits: Counter[str] = request.app.state.hits
    hits[f"deep/{level}"] += 1
    own = _own(request)
    expected = f"{own}/deep/{level - 1}?k={KEY}" if level > 1 else f"{own}/deep/0"
    if level and request.headers.get("referer") != expected:
        return Response(f"bad referer {request.headers.get('referer')}", status_code=403)
    cookie = [Cookie(key=f"hop{level}", value="yes")]
    if level < 4:
        return _html(f"<iframe src='/deep/{level + 1}?k={KEY}'></iframe>", cookie)
    other_host = _other(request).split("//")[1].split(":")[0]
    script = (f"<script>var h = '{other_host[:5]}' + '{other_host[5:]}';\n"
              "new Player({file: location.protocol + '//' + h + ':' + location.port"
              " + '/cdn/live.css', autostart: true});</script>")
    return _html(script, cookie)


@get("/cdn/live.css", sync_to_thread=False)
def cdn(request: Req) -> Response[str]:
    """A cross-host CDN: the player frame's full URL as Referer, its origin as Origin."""
    frame = f"{_other(request)}/deep/4?k={KEY}"
    if request.headers.get("referer") != frame:
        return Response("hotlink", status_code=403)
    if request.headers.get("origin") != _other(request):
        return Response("origin", status_code=403)
    if request.headers.get("cookie"):
        return Response("cookies of another host leaked here", status_code=400)
    return Response(LIVE, media_type="text/css")


@get("/wide", media_type=MediaType.HTML, sync_to_thread=False)
def wide() -> str:
    frames = "".join(f"<iframe src='/count/{n}'></iframe>" for n in range(10))
    return f"<html><body>{frames}<iframe src='about:blank'></iframe></body></html>"


@get("/count/{n:int}", media_type=MediaType.HTML, sync_to_thread=False)
def count(request: Req, n: FromPath[int]) -> str:
    request.app.state.hits[f"count/{n}"] += 1
    return "<html><body>nothing here</body></html>"


@get("/policy", sync_to_thread=False)
def policy_page(request: Req) -> Response[str]:
    return _html(f"<video src='{_other(request)}/x/live.m3u8'></video>",
                 head="<meta name=referrer content=strict-origin-when-cross-origin>")


@get("/many", media_type=MediaType.HTML, sync_to_thread=False)
def many() -> str:
    """Other URLs first in the page, then player fields, then named playlists."""
    others = ",".join(f"'https://cdn.test/asset/{n}'" for n in range(12))
    return ("<html><body><script>var list=[" + others + "];"
            "player.setup({file: '/noext/stream'});</script>"
            "<video><source src='/a.m3u8'><source src='/b' type='application/x-mpegURL'></video>"
            "</body></html>")


@get("/jscookie", media_type=MediaType.HTML, sync_to_thread=False)
def jscookie() -> str:
    return ("<html><body><script>var t = 'ok' + '42'; document.cookie = 'cdn=' + t + '; path=/';"
            "player.setup({file: '/cookie-cdn/live'});</script></body></html>")


@get("/cookie-cdn/live", sync_to_thread=False)
def cookie_cdn(request: Req) -> Response[str]:
    if request.cookies.get("cdn") != "ok42":
        return Response("no cookie", status_code=403)
    return Response(LIVE, media_type="text/plain")


def _app() -> Litestar:
    return Litestar([deep, cdn, wide, count, policy_page, many, jscookie, cookie_cdn],
                    state=State({"hits": Counter()}))


@pytest.fixture
def site(serve: Callable[[Litestar], str]) -> tuple[str, Litestar, EgressPolicy]:
    app = _app()
    base = serve(app)
    port = base.rsplit(":", 1)[1]
    return base, app, EgressPolicy.from_strings([f"127.0.0.1:{port}", f"localhost:{port}"])


async def test_four_iframes_deep_each_hop_gets_its_referer_and_the_player_its_identity(
        site: tuple[str, Litestar, EgressPolicy]) -> None:
    """page -> 4 hops (each 403 without the previous hop's URL as Referer) -> a player whose
    URL is concatenated from location and variables; the cross-host CDN gets the player's
    Referer and Origin and none of the other host's cookies, and plays."""
    base, app, policy = site
    async with client(policy) as http:
        ctx = Context(client=http, policy=policy, deadline=10)
        got = await resolve(f"{base}/deep/0", "http", ctx)
    other = base.replace("127.0.0.1", "localhost")
    assert got.found.url == f"{other}/cdn/live.css"
    assert got.found.headers == {"User-Agent": BROWSER_USER_AGENT,
                                 "Referer": f"{base}/deep/4?k={KEY}", "Origin": base}
    assert got.found.cookies == {}
    assert got.found.via == "iframe 4 > config"
    assert got.probe.live
    assert [app.state.hits[f"deep/{n}"] for n in range(1, 5)] == [1, 1, 1, 1]


async def test_only_the_first_iframes_of_a_page_are_followed(
        site: tuple[str, Litestar, EgressPolicy]) -> None:
    """Ten iframes and an about:blank: the first four http(s) ones are fetched, no more."""
    base, app, policy = site
    async with client(policy) as http:
        with pytest.raises(ExtractionError, match="no playlist"):
            await HttpExtractor().extract(f"{base}/wide", Context(client=http, policy=policy))
    fetched = {k: v for k, v in app.state.hits.items() if k.startswith("count/")}
    assert fetched == {f"count/{n}": 1 for n in range(MAX_IFRAMES)}


async def test_a_declared_referrer_policy_is_what_the_candidate_sends(
        site: tuple[str, Litestar, EgressPolicy]) -> None:
    """strict-origin-when-cross-origin: the cross-host CDN gets only the page's origin."""
    base, _, policy = site
    async with client(policy) as http:
        found = await HttpExtractor().extract(f"{base}/policy", Context(client=http, policy=policy))
    assert found[0].headers["Referer"] == f"{base}/"
    assert found[0].headers["Origin"] == base


async def test_candidates_are_ranked_named_and_typed_then_player_fields_then_others(
        site: tuple[str, Litestar, EgressPolicy]) -> None:
    """Whatever their order in the page: .m3u8 and HLS-typed first, then the player's field,
    then other script URLs, at most MAX_CANDIDATES."""
    base, _, policy = site
    async with client(policy) as http:
        found = await HttpExtractor().extract(f"{base}/many", Context(client=http, policy=policy))
    assert [f.url for f in found[:3]] == [f"{base}/a.m3u8", f"{base}/b", f"{base}/noext/stream"]
    assert [f.via for f in found[:3]] == ["source tag", "source tag", "config"]
    assert [f.url for f in found[3:]] == [f"https://cdn.test/asset/{n}" for n in range(5)]
    assert len(found) == MAX_CANDIDATES


def test_referer_follows_the_frames_policy() -> None:
    """Full URL by default; origin only, or nothing, where the frame's policy says so."""
    frame = "https://site.test/embed/3?c=1#x"
    cdn = "https://cdn.test/live.m3u8"
    assert referer(frame, cdn, "") == "https://site.test/embed/3?c=1"
    assert referer(frame, cdn, "no-referrer-when-downgrade") == "https://site.test/embed/3?c=1"
    assert referer(frame, cdn, "strict-origin-when-cross-origin") == "https://site.test/"
    assert referer(frame, "https://site.test/a.m3u8", "origin-when-cross-origin") == (
        "https://site.test/embed/3?c=1")
    assert referer(frame, cdn, "no-referrer") is None
    assert referer(frame, cdn, "same-origin") is None
    assert referer(frame, "http://cdn.test/x", "strict-origin") is None
    assert origin(frame) == "https://site.test"


async def test_a_cookie_the_page_sets_in_javascript_goes_with_the_candidate(
        site: tuple[str, Litestar, EgressPolicy]) -> None:
    """document.cookie = 'cdn=' + t: the CDN that wants it gets it, and plays."""
    base, _, policy = site
    async with client(policy) as http:
        got = await resolve(f"{base}/jscookie", "http", Context(client=http, policy=policy,
                                                                deadline=10))
    assert got.found.cookies == {"cdn": "ok42"}
    assert got.probe.live
