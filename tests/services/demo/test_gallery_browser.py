"""Every gallery page plays in a real browser (Debian's Chromium): what the page's own scripts
request passes every guard, so the guards test identity, not a made-up protocol."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from litestar import Litestar
from playwright.sync_api import Browser, Response, sync_playwright

from services.demo.app import create_app
from services.demo.gallery import PATTERNS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
GUARDED = ("/g/cdn/", "/g/embed/", "/g/deep/", "/g/api/", "/g/go/")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/bootstrap installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.mark.parametrize("pattern", [p.id for p in PATTERNS])
def test_page_plays_in_chromium_through_its_guards(browser: Browser,
                                                   serve: Callable[[Litestar], str],
                                                   pattern: str) -> None:
    """The page's player fetches its live playlists and segments; no guarded request is refused."""
    base = serve(create_app(gallery=True))
    context = browser.new_context(user_agent=USER_AGENT)
    seen: list[tuple[int, str]] = []

    def record(response: Response) -> None:
        if any(part in response.url for part in (*GUARDED, "/g/ads/vod/")):
            seen.append((response.status, response.url))

    try:
        page = context.new_page()
        page.on("response", record)
        page.goto(f"{base}/g/p/{pattern}")
        if pattern == "click-to-play":
            page.wait_for_timeout(1000)
            assert not [u for _, u in seen if "/g/cdn/" in u], "it must not autoplay"
            frame = next(f for f in page.frames if "/g/embed/click/" in f.url)
            frame.click("#play-overlay")

        def segments() -> list[str]:
            return [u for s, u in seen if s == 200 and "/g/cdn/" in u
                    and not u.split("?")[0].endswith((".m3u8", ".css", "/stream", ".txt"))]

        for _ in range(100):
            if len(segments()) >= 2:
                break
            page.wait_for_timeout(100)
        assert len(segments()) >= 2, seen
        assert not [(s, u) for s, u in seen if s >= 400], seen
        if pattern == "decoy-vod":  # a browser's first playlist is the ad: the trap is real
            playlists = [u for _, u in seen if ".m3u8" in u]
            assert "/g/ads/vod/preroll.m3u8" in playlists[0]
    finally:
        context.close()
