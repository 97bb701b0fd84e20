"""The browser extractor: real Chromium on the demo pages, behind the egress proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from litestar import Litestar, MediaType, get

from services.extractor.extractors.browser import CHROMIUM, BrowserExtractor
from services.extractor.probe import probe
from services.extractor.registry import Context, ExtractionError
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
    assert found.headers == {"Referer": f"{demo}/embed/player"}
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
