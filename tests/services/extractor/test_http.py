"""The http extractor on the demo pages, and its HTML scanning."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar

from services.extractor.extractors.http import HttpExtractor, find_playlists
from services.extractor.probe import probe
from services.extractor.registry import Context, ExtractionError
from shared.egress import EgressPolicy, client
from shared.identity import BROWSER_USER_AGENT
from tests.services.extractor.conftest import COOKIE
from tests.shared.test_egress import Origin


async def test_plain_page_gives_the_playlist_in_its_video_tag(ctx: Context, demo: str) -> None:
    """Page (a): the <source> playlist, absolute, with the page as Referer."""
    found = (await HttpExtractor().extract(f"{demo}/pages/plain", ctx))[0]
    assert found.url == f"{demo}/live/master.m3u8"
    assert found.headers == {"User-Agent": BROWSER_USER_AGENT, "Referer": f"{demo}/pages/plain"}
    assert found.title == "Demo stream: plain"


async def test_iframe_player_gives_playlist_referer_and_cookie(ctx: Context, demo: str) -> None:
    """Page (c): the iframe is followed; its Referer and cookie are what the origin wants."""
    found = (await HttpExtractor().extract(f"{demo}/pages/embedded", ctx))[0]
    assert found.url == f"{demo}/secure/master.m3u8"
    assert found.headers == {"User-Agent": BROWSER_USER_AGENT, "Referer": f"{demo}/embed/player"}
    assert found.cookies == {"demo_session": COOKIE}
    result = await probe(ctx.client, ctx.policy, found.url, headers=found.headers,
                         cookies=found.cookies)
    assert result.live
    assert len(result.variants) == 2


async def test_script_built_urls_are_not_guessed(ctx: Context, demo: str) -> None:
    """Page (b) needs JavaScript: the http extractor says it found nothing."""
    with pytest.raises(ExtractionError, match="no playlist"):
        await HttpExtractor().extract(f"{demo}/pages/scripted", ctx)


async def test_a_page_outside_the_allow_list_is_never_fetched(serve: Callable[[Litestar], str]) -> None:
    """A loopback page not allow-listed is refused and its server records zero requests."""
    origin = Origin()
    base = serve(origin.app())
    policy = EgressPolicy()
    async with client(policy) as http:
        with pytest.raises(ExtractionError, match="egress policy"):
            await HttpExtractor().extract(f"{base}/page", Context(client=http, policy=policy))
    assert origin.hits == []


def test_playlists_are_found_in_markup_scripts_and_json() -> None:
    """Tags in document order, then quoted URLs in scripts and JSON (escaped slashes too)."""
    html = """<html><head><title> T </title><meta property="og:video" content="/og.m3u8"></head>
    <body><video src="a/one.m3u8?x=1"></video><a href="//cdn.test/two.m3u8">x</a>
    <script>var cfg = {"file":"https:\\/\\/cdn.test\\/three.m3u8?token=abc"};</script>
    <iframe src="/embed/1"></iframe></body></html>"""
    found, iframes, title = find_playlists(html)
    assert found == ["/og.m3u8", "a/one.m3u8?x=1", "//cdn.test/two.m3u8",
                     "https://cdn.test/three.m3u8?token=abc"]
    assert iframes == ["/embed/1"]
    assert title == "T"


@given(st.text(max_size=2000))
def test_scanning_never_fails_on_arbitrary_input(text: str) -> None:
    """Whatever the page holds, scanning returns lists (no exception)."""
    found, iframes, _ = find_playlists(text)
    assert isinstance(found, list)
    assert isinstance(iframes, list)
