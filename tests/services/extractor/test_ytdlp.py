"""The ytdlp extractor (yt-dlp as a library) on the demo pages, behind the egress proxy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar, MediaType, get

from services.extractor.extractors.ytdlp import YtDlpExtractor
from services.extractor.registry import Context, ExtractionError
from shared.egress import client
from shared.egress_proxy import EgressProxy
from tests.services.extractor.conftest import allowing
from tests.shared.test_egress import Origin


async def test_plain_page_resolves_through_yt_dlps_generic_extractor(ctx: Context, demo: str) -> None:
    """yt-dlp finds the <source> playlist of page (a)."""
    found = (await YtDlpExtractor().extract(f"{demo}/pages/plain", ctx))[0]
    assert found.url == f"{demo}/live/master.m3u8"
    assert found.headers.get("Referer", f"{demo}/pages/plain") == f"{demo}/pages/plain"


async def test_script_built_urls_defeat_yt_dlp(ctx: Context, demo: str) -> None:
    """Page (b) builds its URL in JavaScript, which yt-dlp cannot run."""
    with pytest.raises(ExtractionError):
        await YtDlpExtractor().extract(f"{demo}/pages/scripted", ctx)


async def test_yt_dlp_cannot_reach_a_port_outside_the_allow_list(
        serve: Callable[[Litestar], str]) -> None:
    """An allowed page pointing at a forbidden loopback port: that port sees zero requests."""
    forbidden = Origin()
    forbidden_base = serve(forbidden.app())

    @get("/page", media_type=MediaType.HTML, sync_to_thread=False)
    def page() -> str:
        return (f"<html><title>x</title><video><source src='{forbidden_base}/live.m3u8' "
                "type='application/x-mpegURL'></video></html>")

    allowed = serve(Litestar([page], openapi_config=None, logging_config=None))
    policy = allowing(allowed)
    async with client(policy) as http, EgressProxy(policy) as proxy:
        ctx = Context(client=http, policy=policy, proxy=proxy.url, deadline=15.0)
        with pytest.raises(ExtractionError):
            await YtDlpExtractor().extract(f"{allowed}/page", ctx)
        # And straight at it, as a redirect target would be.
        with pytest.raises(ExtractionError):
            await YtDlpExtractor().extract(f"{forbidden_base}/page", ctx)
        assert proxy.refused >= 1
    assert forbidden.hits == []
