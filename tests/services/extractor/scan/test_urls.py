"""What looks like a playlist URL, ranked: named or typed first, then player fields, then
other URLs; files that are never playlists left out."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given

from services.extractor.scan.urls import Tier, is_hls_type, rank, resolve, sweep, url_shaped
from tests.services.extractor.scan.strategies import urls


@pytest.mark.parametrize(("url", "player", "typed", "tier"), [
    ("https://cdn.test/live/index.m3u8?t=1", False, False, Tier.PLAYLIST),
    ("/hls/master.M3U8", False, False, Tier.PLAYLIST),
    ("/live/mono.css", True, False, Tier.PLAYER),
    ("/live/stream", True, False, Tier.PLAYER),
    ("/chunks.txt", True, False, Tier.PLAYER),
    ("/live.php?id=1", True, False, Tier.PLAYER),
    ("/video.mp4", True, True, Tier.PLAYLIST),  # typed as HLS: its type says more than its name
    ("https://cdn.test/api/stream?id=1", False, False, Tier.OTHER),
])
def test_ranks(url: str, player: bool, typed: bool, tier: Tier) -> None:
    """Named or typed: playlist tier; in a player field: player tier; other absolute URLs last."""
    assert rank(url, player=player, typed=typed) is tier


@pytest.mark.parametrize(("url", "player"), [
    ("/poster.jpg", True), ("/ad.mp4", True), ("/player.js", True), ("/subs.vtt", True),
    ("/vast.xml?zone=1", True), ("/seg/001.ts", True), ("/dash.mpd", True),
    ("https://schema.org", False), ("https://site.test/", False),
    ("/relative/path", False),  # a path in a script, not in a player field
])
def test_never_candidates(url: str, player: bool) -> None:
    """Images, video files, scripts, subtitles, VAST, segments, DASH, site roots: never."""
    assert rank(url, player=player) is None


def test_hls_types_and_url_shapes() -> None:
    """HLS types are recognised however spelled; URL shapes exclude words and code."""
    assert all(map(is_hls_type, ["application/x-mpegURL", "application/vnd.apple.mpegurl",
                                 "hls", "M3U8", "audio/mpegurl; charset=utf-8"]))
    assert not any(map(is_hls_type, ["video/mp4", "mp4", "", "dash"]))
    assert all(map(url_shaped, ["https://a.test/x", "//a.test/x", "/x/y", "live/x", "x.m3u8"]))
    assert not any(map(url_shaped, ["vplayer", "two words", "<b>x</b>", "{a:1}", "ab"]))


def test_resolve_keeps_http_only() -> None:
    """Relative URLs are resolved; other schemes and bad ports are dropped."""
    assert resolve("https://s.test/a/b", "../c.m3u8#t") == "https://s.test/c.m3u8"
    assert resolve("https://s.test/a/b", "//cdn.test/x") == "https://cdn.test/x"
    for bad in ("javascript:alert(1)", "data:text/html,x", "about:blank", "ftp://h/x",
                "http://h:99999/x"):
        assert resolve("https://s.test/", bad) is None


@given(urls())
def test_sweep_finds_a_playlist_url_however_it_is_escaped(url: str) -> None:
    """Plain, JSON-escaped, \\x2F, \\u002F and percent-encoded URLs are all found in text."""
    escaped = [url, json.dumps(url)[1:-1].replace("/", "\\/"), url.replace("/", "\\x2F"),
               url.replace("/", "\\u002F"), f"player.php?src={quote(url, safe='')}&w=1"]
    for text in escaped:
        assert url in list(sweep(f"<script>var x = '{text}';</script>")), text


def test_sweep_skips_bare_names_and_splits_lists() -> None:
    """Bare file names are fragments; comma-joined URLs are separate."""
    assert list(sweep("'master.m3u8' and \"/live/a.m3u8\"")) == ["/live/a.m3u8"]
    assert list(sweep("https://a.test/1.m3u8,https://b.test/2.m3u8")) == [
        "https://a.test/1.m3u8", "https://b.test/2.m3u8"]
    assert list(sweep("no playlists here: https://a.test/x.mp4")) == []
