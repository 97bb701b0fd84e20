"""The http extractor on the demo gallery's hard pages: every page the gallery expects the http
extractor to read resolves to its live stream, found where the page hides it, and passes the
CDN's guard with the identity the candidate carries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar

from services.demo.app import create_app
from services.demo.gallery import PATTERNS
from services.extractor.registry import Context
from services.extractor.resolve import resolve
from shared.egress import EgressPolicy, client

#: Where each page hides its stream: what the candidate's ``via`` must say.
HIDDEN_IN = {"noext": "source tag", "packed": "packed > packed > config",
             "base64": "base64 > json > config", "player-config": "config",
             "deep-iframes": "iframe 3 > config", "ua-origin": "source tag",
             "decoy-vod": "config", "cloaked": "source tag", "redirect-cdn": "source tag"}
HTTP = [p.id for p in PATTERNS if p.extractor == "http"]


@pytest.fixture
def gallery(serve: Callable[[Litestar], str]) -> tuple[str, EgressPolicy]:
    base = serve(create_app(gallery=True, gallery_secret=b"g" * 32))
    port = base.rsplit(":", 1)[1]
    return base, EgressPolicy.from_strings([f"127.0.0.1:{port}", f"localhost:{port}"])


def test_every_http_page_of_the_gallery_is_covered_here() -> None:
    """A page the gallery adds for the http extractor must be added here too."""
    assert set(HTTP) == set(HIDDEN_IN)


@pytest.mark.parametrize("pattern", HTTP)
async def test_the_http_extractor_plays_the_page(gallery: tuple[str, EgressPolicy],
                                                 pattern: str) -> None:
    """resolve(page, "http") ends on the live stream; a decoy VOD is probed and set aside."""
    base, policy = gallery
    async with client(policy) as http:
        got = await resolve(f"{base}/g/p/{pattern}", "http", Context(client=http, policy=policy,
                                                                     deadline=15))
    assert got.probe.live
    assert got.found.via == HIDDEN_IN[pattern]
    assert "/g/cdn/" in got.probe.url
    verdicts = [v.verdict for v in got.attempts[0].candidates]
    assert verdicts == (["fallback", "accepted"] if pattern == "decoy-vod" else ["accepted"])
