"""A page scanned whole: markup, scripts and everything they hide, decoded recursively;
candidates ranked and labelled with the decoders they came through."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from services.extractor.scan.budget import Budget
from services.extractor.scan.page import PageScan, scan
from services.extractor.scan.urls import Tier
from tests.services.extractor.scan.test_packer import pack

PAGE = "https://site.test/watch/f1"


def scanned(html: str) -> PageScan:
    return scan(html, PAGE, Budget(10))


def found(html: str) -> list[tuple[str, str]]:
    return [(c.url, c.via) for c in scanned(html).candidates]


def test_markup_scripts_and_json_in_rank_and_document_order() -> None:
    """Candidates from tags, links, meta, configs and scripts come ranked, then in page order."""
    html = """<html><head><title> T </title><meta property="og:video" content="/og.m3u8"></head>
    <body><video src="a/one.m3u8?x=1"></video><a href="//cdn.test/two.m3u8">x</a>
    <script>var cfg = {"file":"https:\\/\\/cdn.test\\/three?token=abc"};
    var other = "https://api.test/v1/status";</script>
    <iframe src="/embed/1"></iframe><iframe src="about:blank"></iframe></body></html>"""
    result = scanned(html)
    assert [(c.url, c.tier, c.via) for c in result.candidates] == [
        ("https://site.test/og.m3u8", Tier.PLAYLIST, "og:video"),
        ("https://site.test/watch/a/one.m3u8?x=1", Tier.PLAYLIST, "video tag"),
        ("https://cdn.test/two.m3u8", Tier.PLAYLIST, "link"),
        ("https://cdn.test/three?token=abc", Tier.PLAYER, "config"),
        ("https://api.test/v1/status", Tier.OTHER, "script")]
    assert result.iframes == ["https://site.test/embed/1"]
    assert result.title == "T"


def test_document_write_of_unescaped_markup_adds_its_iframe() -> None:
    """document.write(unescape('%3Ciframe...')) yields the iframe to follow."""
    tag = '<iframe src="https://embed.test/e/9?autoplay=1" allowfullscreen></iframe>'
    escaped = "".join(f"%{ord(c):02X}" for c in tag)
    result = scanned(f"<script>document.write(unescape('{escaped}'));</script>")
    assert result.iframes == ["https://embed.test/e/9?autoplay=1"]


def test_an_iframe_split_across_concatenation_is_reassembled() -> None:
    """'<ifr' + 'ame src="' + host + ... is put back together."""
    script = ("var host = 'https://' + 'embed' + '.test'; var id = '42';"
              "document.write('<ifr' + 'ame src=\"' + host + '/embed/' + id + '\" width=' + w"
              " + '></ifr' + 'ame>');")
    assert scanned(f"<script>{script}</script>").iframes == ["https://embed.test/embed/42"]


def test_a_url_concatenated_from_literals_is_a_candidate() -> None:
    """"https://" + "cdn" + ... + "x.m3u8" is one candidate."""
    html = '<script>var src = "https://" + "cdn" + ".example/live/" + "x.m3u8";</script>'
    assert found(html) == [("https://cdn.example/live/x.m3u8", "script")]


def test_base64_json_config_with_escaped_slashes() -> None:
    """A base64 data attribute holding a JSON player config gives its source."""
    config = json.dumps({"sources": [{"file": "https://cdn.test/live/playlist", "type": "hls"}],
                         "image": "/poster.jpg"}).replace("/", "\\/")
    blob = base64.b64encode(config.encode()).decode()
    html = f"<div id=p data-config='{blob}'></div><script>jwplayer('p').setup(cfg)</script>"
    assert found(html) == [("https://cdn.test/live/playlist", "base64 > json > config")]


def test_json_blobs_inline_and_parsed() -> None:
    """Inline JSON scripts and JSON.parse('...') configs are read."""
    html = ("<script type=application/json id=__DATA__>{\"props\":{\"stream\":{\"hls\":"
            "\"https://cdn.test/a/b\"}}}</script>"
            "<script>var c = JSON.parse('{\"file\":\"\\/live\\/c\"}');</script>")
    assert found(html) == [("https://cdn.test/a/b", "config"),
                           ("https://site.test/live/c", "json > config")]


def test_packed_atob_in_packed_is_followed_down() -> None:
    """atob inside a block packed twice is decoded."""
    inner = "var s=atob('aHR0cHM6Ly9jZG4udGVzdC9zdHJlYW0=');player.load(s);"
    html = f"<script>{pack(pack(inner))}</script>"
    assert found(html) == [("https://cdn.test/stream", "packed > packed > config")]


def test_a_percent_encoded_url_in_an_iframe_query() -> None:
    """A playlist URL percent-encoded in an iframe's query, or in flashvars, is a candidate."""
    html = ("<iframe src='/player.php?u=https%3A%2F%2Fcdn.test%2Flive%2Fx.m3u8&w=1'></iframe>"
            "<embed flashvars='file=https://cdn.test/flash.m3u8&autostart=true'>")
    assert [u for u, _ in found(html)] == ["https://cdn.test/live/x.m3u8",
                                           "https://cdn.test/flash.m3u8&autostart=true"]


def test_location_and_the_base_element_resolve_urls() -> None:
    """<base href> and location.origin give URLs their origin."""
    html = ("<base href='https://cdn.test/b/'><source src='live.m3u8'>"
            "<script>hls.loadSource(location.origin + '/hls/x');</script>")
    assert found(html) == [("https://cdn.test/b/live.m3u8", "source tag"),
                           ("https://site.test/hls/x", "config")]


@settings(max_examples=200)
@given(st.text(max_size=3000))
def test_scanning_never_fails_on_arbitrary_text(text: str) -> None:
    """Any text scans to http(s) candidates and iframes only."""
    result = scanned(text)
    assert all(c.url.startswith(("http://", "https://")) for c in result.candidates)
    assert all(u.startswith(("http://", "https://")) for u in result.iframes)


_PIECES = st.sampled_from(["<script>", "</script>", "<iframe src='", "'>", "eval(function(p,a,c,k,e,d){",
                           "}('", "',62,3,'a|b'.split('|'),0,{}))", "atob('", "aHR0cDovL3gueS96Lm0zdTg=",
                           "')", "+", "'", '"', "\\", "/*", "*/", "//", "`${", "}`", "{file:",
                           "https://a.test/x.m3u8", "%3Ciframe", "<video src=", "[", "]", "(", ")"])


@settings(max_examples=200)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_scanning_never_fails_on_shreds_of_what_it_decodes(html: str) -> None:
    """Random mixes of decoder syntax never raise."""
    assert isinstance(scanned(html).candidates, list)


def test_code_hidden_in_base64_is_read_as_a_script() -> None:
    """eval(atob('...')): the decoded code is lexed, so its concatenations are joined."""
    code = "var h='https://cdn.test'; jwplayer('p').setup({file: h + '/live/stream'});"
    blob = base64.b64encode(code.encode()).decode()
    assert found(f"<script>eval(atob('{blob}'));</script>") == [
        ("https://cdn.test/live/stream", "script > config")]
    assert found(f"<script>var c = '{blob}';</script>") == [
        ("https://cdn.test/live/stream", "base64 > script > config")]


def test_a_page_that_moves_on_is_followed_like_a_frame() -> None:
    """<meta http-equiv=refresh>, location.href = ... and location.replace(...) are followed."""
    html = ("<meta http-equiv='refresh' content='0; url=/embed/1'>"
            "<script>var id='2'; if (top === self) { location.href = '/embed/' + id; }"
            "window.location.replace('https://other.test/e/3'); ga('send', '/not/a/frame');</script>")
    assert scanned(html).iframes == ["https://site.test/embed/1", "https://site.test/embed/2",
                                     "https://other.test/e/3"]


def test_cookies_a_script_sets_are_kept() -> None:
    """document.cookie = 'name=' + value + '; path=/': the name and value, not the attributes."""
    html = ("<script>var t = 'abc'; document.cookie = 'cdn_auth=' + t + '; path=/; max-age=60';"
            "document.cookie = x;</script>")
    assert scanned(html).cookies == {"cdn_auth": "abc"}
