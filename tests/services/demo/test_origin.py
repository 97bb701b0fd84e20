"""The demo origin over HTTP: live playlists, and pages of increasing difficulty."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import m3u8
from litestar import Litestar

from services.demo.app import COOKIE, create_app
from tests.conftest import FakeClock


def origin(serve: Callable[[Litestar], str], clock: FakeClock) -> str:
    return serve(create_app(now=clock.now, token="tok-123", cookie="cookie-abc"))


def test_live_playlist_advances_and_segments_are_video(serve: Callable[[Litestar], str],
                                                        clock: FakeClock) -> None:
    """The media sequence advances in real (here: fake) time and segments are MPEG-TS."""
    base = origin(serve, clock)
    with httpx.Client(base_url=base) as http:
        master = m3u8.loads(http.get("/live/master.m3u8").text)
        variant = master.playlists[0].uri
        first = m3u8.loads(http.get(f"/live/{variant}").text)
        clock.advance(4)
        second = http.get(f"/live/{variant}")
        assert second.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert m3u8.loads(second.text).media_sequence == first.media_sequence + 2
        seg = http.get(f"/live/360p/{first.segments[-1].uri}")
        assert seg.status_code == 200
        assert seg.content[0] == 0x47  # MPEG-TS sync byte
        assert http.get("/live/360p/99999999999.ts").status_code == 404
        assert http.get("/live/360p/../../etc/passwd").status_code == 404
        assert http.get("/live/720p/index.m3u8").status_code == 404


def test_plain_page_has_the_playlist_in_its_markup(serve: Callable[[Litestar], str],
                                                    clock: FakeClock) -> None:
    """Page (a): a <source> tag points at the live master playlist."""
    with httpx.Client(base_url=origin(serve, clock)) as http:
        page = http.get("/pages/plain").text
    assert "<source src='/live/master.m3u8'" in page


def test_scripted_page_needs_its_script_to_find_the_stream(serve: Callable[[Litestar], str],
                                                            clock: FakeClock) -> None:
    """Page (b): no playlist URL in the markup; the token the script assembles unlocks it."""
    with httpx.Client(base_url=origin(serve, clock)) as http:
        page = http.get("/pages/scripted").text
        assert "tok-123" not in page
        assert "/t/" not in page
        codes = json.loads(re.search(r"var c=(\[[^\]]*\])", page)[1])  # type: ignore[index]
        token = "".join(chr(c) for c in reversed(codes))
        assert token == "tok-123"
        assert http.get("/t/wrong/master.m3u8").status_code == 403
        assert http.get(f"/t/{token}/master.m3u8").status_code == 200
        assert http.get(f"/t/{token}/180p/index.m3u8").status_code == 200


def test_embedded_stream_needs_the_players_cookie_and_referer(serve: Callable[[Litestar], str],
                                                               clock: FakeClock) -> None:
    """Page (c): the iframe's player sets a cookie; the stream wants it and the player Referer."""
    base = origin(serve, clock)
    with httpx.Client(base_url=base) as http:
        assert "/embed/player" in http.get("/pages/embedded").text
        assert http.get("/secure/master.m3u8").status_code == 403
        player = http.get("/embed/player")
        assert player.cookies[COOKIE] == "cookie-abc"
        assert "/secure/master.m3u8" in player.text
        referer = {"Referer": f"{base}/embed/player"}
        assert http.get("/secure/master.m3u8", headers=referer).status_code == 200
        http.cookies.clear()
        denied = http.get("/secure/master.m3u8", headers=referer)
        assert denied.status_code == 403
        assert "cookie" in denied.text
        http.cookies.set(COOKIE, "cookie-abc")
        assert http.get("/secure/master.m3u8").status_code == 403
        assert http.get("/secure/180p/index.m3u8", headers=referer).status_code == 200
