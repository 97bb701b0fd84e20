"""The gallery of hard pages over HTTP: every page hides the live stream its way, and every
CDN guard refuses the wrong request (403) and serves the right one."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import unquote, urljoin

import httpx
import m3u8
import pytest
from litestar import Litestar

from services.demo.app import create_app
from services.demo.gallery import PATTERNS
from services.demo.gallery.cdn import PNG_1X1
from services.demo.gallery.routes import CDNS
from shared.settings import load_settings
from tests.conftest import FakeClock
from tests.services.demo.test_packer import unpack

BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/156.0.0.0 Safari/537.36")
IDS = ("noext", "packed", "base64", "player-config", "docwrite", "deep-iframes", "xhr-token",
       "click-to-play", "ua-origin", "decoy-vod", "cloaked", "redirect-cdn")


class Site:
    """The gallery served on a free port, reachable as ``127.0.0.1`` and as ``localhost``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.alt = base.replace("127.0.0.1", "localhost")
        self.http = httpx.Client(headers={"User-Agent": BROWSER}, timeout=10)

    def get(self, url: str, **headers: str) -> httpx.Response:
        full = url if url.startswith("http") else self.base + url
        return self.http.get(full, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def page(self, pattern: str) -> str:
        reply = self.get(f"/g/p/{pattern}")
        assert reply.status_code == 200
        return reply.text


@pytest.fixture
def site(serve: Callable[[Litestar], str], clock: FakeClock) -> Iterator[Site]:
    s = Site(serve(create_app(now=clock.now, gallery=True, gallery_secret=b"s" * 32)))
    yield s
    s.http.close()


def plays(site: Site, master_url: str, **headers: str) -> m3u8.M3U8:
    """Fetch master, first media playlist and its newest segment with ``headers``; all 200.
    Returns the media playlist."""
    master = site.get(master_url, **headers)
    assert master.status_code == 200, master.text
    assert master.text.startswith("#EXTM3U")
    variant = urljoin(str(master.url), m3u8.loads(master.text).playlists[0].uri)
    media = site.get(variant, **headers)
    assert media.status_code == 200, media.text
    playlist = m3u8.loads(media.text)
    assert playlist.segments
    assert not playlist.is_endlist
    segment = site.get(urljoin(str(media.url), playlist.segments[-1].uri), **headers)
    assert segment.status_code == 200, segment.text
    assert 0x47 in segment.content[:1024]
    return playlist


def refused(reply: httpx.Response, why: str = "") -> bool:
    return reply.status_code == 403 and why.lower() in reply.text.lower()


def test_registry_lists_every_pattern_once_with_a_stable_id() -> None:
    """Ids, order and paths are stable; each names http or browser and has a description."""
    assert tuple(p.id for p in PATTERNS) == IDS
    for p in PATTERNS:
        assert p.path == f"/g/p/{p.id}"
        assert p.extractor in ("http", "browser")
        assert p.description
        assert "\n" not in p.description


def test_gallery_is_off_unless_asked_for(serve: Callable[[Litestar], str], clock: FakeClock) -> None:
    """The default demo serves no /g/ (it stays quick); with the flag the index lists every page."""
    plain = serve(create_app(now=clock.now))
    assert httpx.get(f"{plain}/g/").status_code == 404
    assert "/g/" not in httpx.get(f"{plain}/").text
    on = serve(create_app(now=clock.now, gallery=True))
    assert "href=/g/" in httpx.get(f"{on}/").text
    index = html.unescape(httpx.get(f"{on}/g/").text)
    for p in PATTERNS:
        assert f"href='{p.path}'" in index
        assert f'id = "gallery-{p.id}"' in index


def test_demo_setting_turns_the_gallery_on() -> None:
    """``SLIPSTREAM_DEMO_GALLERY=true`` (or ``demo.gallery``) enables it; off by default."""
    assert load_settings(env={}).demo.gallery is False
    assert load_settings(env={"SLIPSTREAM_DEMO_GALLERY": "true"}).demo.gallery is True


def test_pages_look_like_real_embed_sites(site: Site) -> None:
    """Each page has a player, ad scripts, analytics and noise around the stream."""
    for p in PATTERNS:
        text = site.page(p.id)
        assert "/g/ads/invoke.js" in text
        assert "/g/static/pop.js" in text
        assert "gtag(" in text
        assert "slipplayer.js" in text
    for asset in ("/g/static/slipplayer.js", "/g/static/pop.js", "/g/static/analytics.js",
                  "/g/ads/invoke.js", "/g/static/poster.svg", "/g/ads/px.gif", "/g/widgets/chat",
                  "/g/ads/vast.xml?zone=1", "/g/ads/banner?key=a&w=300&h=250"):
        assert site.get(asset).status_code == 200, asset
    assert site.get("/g/static/../routes.py").status_code == 404
    assert site.get("/g/p/nope").status_code == 404


def test_noext_playlists_are_known_by_content_type_and_body(site: Site) -> None:
    """mono.css, an extensionless and a .txt media playlist, extensionless segments; Referer."""
    page = site.page("noext")
    assert "/g/cdn/noext/live/mono.css" in page
    assert ".m3u8" not in page
    master = "/g/cdn/noext/live/mono.css"
    assert refused(site.get(master), "no referer")
    assert refused(site.get(master, referer=f"{site.alt}/g/p/noext"), "hotlink")
    ref = {"referer": f"{site.base}/g/p/noext"}
    reply = site.get(master, **ref)
    assert reply.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert [p.uri for p in m3u8.loads(reply.text).playlists] == ["hd/stream", "sd/chunks.txt"]
    hd = site.get("/g/cdn/noext/live/hd/stream", **ref)
    assert hd.headers["content-type"].startswith("application/x-mpegurl")
    sd = site.get("/g/cdn/noext/live/sd/chunks.txt", **ref)
    assert sd.headers["content-type"].startswith("text/plain")
    assert sd.text.startswith("#EXTM3U")
    playlist = plays(site, master, **ref)
    assert re.fullmatch(r"s/\d+", playlist.segments[-1].uri)
    seg = site.get(f"/g/cdn/noext/live/hd/{playlist.segments[-1].uri}", **ref)
    assert seg.headers["content-type"] == "application/octet-stream"
    assert seg.content[0] == 0x47
    assert refused(site.get(f"/g/cdn/noext/live/hd/{playlist.segments[-1].uri}"))


def packed_blocks(page: str) -> list[str]:
    return re.findall(r"<script type='text/javascript'>(eval\(function\(p,a,c,k,e,d\).*?)</script>",
                      page, re.DOTALL)


def test_packed_page_hides_the_signed_url_in_a_double_packed_block(site: Site,
                                                                   clock: FakeClock) -> None:
    """Two packed blocks; only the twice-packed one holds the stream; nginx secure_link."""
    page = site.page("packed")
    # Packer hides the text, not the vocabulary: its word list still holds "m3u8".
    assert "index.m3u8" not in page
    assert "/g/cdn/packed" not in page
    blocks = packed_blocks(page)
    assert len(blocks) == 2
    ads = unpack(blocks[0])
    assert "m3u8" not in ads
    assert "vast.xml" in ads
    once = unpack(blocks[1])
    assert once.startswith("eval(function(p,a,c,k,e,d)")
    stream = re.search(r'source:"([^"]+)"', unpack(once))[1]  # type: ignore[index]
    assert "/g/cdn/packed/hls/f1-live/index.m3u8?md5=" in stream
    assert "&expires=" in stream
    playlist = plays(site, stream)
    assert "?md5=" in playlist.segments[-1].uri  # the token rides on every URI
    assert refused(site.get(stream.split("?")[0]), "secure link")
    assert refused(site.get(re.sub(r"md5=[^&]+", "md5=AAAAAAAAAAAAAAAAAAAAAA", stream)), "signature")
    later = int(re.search(r"expires=(\d+)", stream)[1]) + 100  # type: ignore[index]
    assert refused(site.get(re.sub(r"expires=\d+", f"expires={later}", stream)), "signature")
    clock.advance(1801)
    assert refused(site.get(stream), "expired")


def test_base64_page_has_the_url_in_atob_and_in_a_base64_json_config(site: Site,
                                                                     clock: FakeClock) -> None:
    """atob("...") decodes to the URL; the config blob is JSON with escaped slashes; EdgeAuth."""
    page = site.page("base64")
    assert "m3u8" not in page
    stream = base64.b64decode(re.search(r'atob\("([^"]+)"\)', page)[1]).decode()  # type: ignore[index]
    blob = base64.b64decode(re.search(r"data-config='([^']+)'", page)[1]).decode()  # type: ignore[index]
    assert "http:\\/\\/127.0.0.1" in blob
    assert json.loads(blob)["sources"][0]["file"] == stream
    assert "?hdnts=exp=" in stream
    assert "~acl=/g/cdn/base64/live/*~hmac=" in stream
    plays(site, stream)
    assert refused(site.get(stream.split("?")[0]), "hdnts")
    assert refused(site.get(stream[:-4] + "0000"), "hmac")
    clock.advance(601)
    assert refused(site.get(stream), "expired")


def test_player_config_builds_the_url_from_parts_and_needs_the_page_referer(site: Site) -> None:
    """jwplayer sources:[{file: a + b + c}]; the CDN serves only the page itself."""
    page = site.page("player-config")
    assert "sources: [{ file: _proto + _srv + _path + _file" in page
    assert "/g/cdn/player-config/abr/master.m3u8" not in page
    master = "/g/cdn/player-config/abr/master.m3u8"
    assert refused(site.get(master))
    assert refused(site.get(master, referer=f"{site.base}/g/p/noext"))
    plays(site, master, referer=f"{site.base}/g/p/player-config")


def test_docwrite_chain_checks_each_referer(site: Site) -> None:
    """unescape() writes the frame; the frame writes a concatenated player iframe; each hop is
    refused without the previous one's Referer."""
    page = site.page("docwrite")
    escaped = re.search(r"document\.write\(unescape\('([^']+)'\)\)", page)[1]  # type: ignore[index]
    assert "iframe" not in escaped
    frame = re.search(r'src="([^"]+)"', unquote(escaped))[1]  # type: ignore[index]
    assert frame.startswith("/g/embed/docwrite/frame")
    assert refused(site.get(frame))
    reply = site.get(frame, referer=f"{site.base}/g/p/docwrite")
    assert reply.status_code == 200
    assert "'/g/em'+'bed/doc'+'write/pl'+'ayer?v='+vid" in reply.text
    player = "/g/embed/docwrite/player?v=f1live&w=640"
    assert refused(site.get(player, referer=f"{site.base}/g/p/docwrite"))
    reply = site.get(player, referer=f"{site.base}{frame}")
    assert reply.status_code == 200
    master = "/g/cdn/docwrite/live/master.m3u8"
    assert master in reply.text
    assert refused(site.get(master, referer=f"{site.base}{frame}"))
    plays(site, master, referer=f"{site.base}{player}")


def test_deep_iframes_need_every_previous_hop_and_the_players_origin(site: Site) -> None:
    """page -> 1 -> 2 -> 3 (player): each hop wants the exact URL before it; the cross-origin
    CDN wants the last hop as Referer and the player's Origin."""
    page = site.page("deep-iframes")
    hop = re.search(r"<iframe src='(/g/deep/1\?c=[^']+)'", page)[1]  # type: ignore[index]
    referer = f"{site.base}/g/p/deep-iframes?utm=x"  # the page's own query does not matter
    for level in (1, 2, 3):
        assert refused(site.get(hop)), level
        assert refused(site.get(hop, referer=f"{site.base}/g/p/noext")), level
        reply = site.get(hop, referer=referer)
        assert reply.status_code == 200, (level, reply.text)
        referer = f"{site.base}{hop}"
        if level < 3:
            hop = re.search(r"<iframe src='([^']+)'", reply.text)[1]  # type: ignore[index]
            assert hop.startswith(f"/g/deep/{level + 1}?c=")
    assert "content='no-referrer-when-downgrade'" in reply.text
    master = re.search(r'load\("([^"]+)"\)', reply.text)[1]  # type: ignore[index]
    assert master == f"{site.alt}/g/cdn/deep/live/master.m3u8"
    origin = site.base
    assert refused(site.get(master, referer=referer), "origin")
    assert refused(site.get(master, referer=f"{site.base}/", origin=origin))
    assert refused(site.get(master, referer=referer, origin=site.alt))
    tampered = referer[:-3] + ("aaa" if not referer.endswith("aaa") else "bbb")
    assert refused(site.get(master, referer=tampered, origin=origin))
    plays(site, master, referer=referer, origin=origin)
    cors = site.get(master, referer=referer, origin=origin).headers
    assert cors["access-control-allow-origin"] == origin


def test_xhr_token_needs_the_cookie_the_xhr_header_and_a_fresh_token(site: Site,
                                                                     clock: FakeClock) -> None:
    """The page's cookie + X-Requested-With get a 90 s token; playlists and segments carry it."""
    page = site.page("xhr-token")
    assert "/g/api/token" in page
    assert "X-Requested-With" in page
    assert "gsid" in site.http.cookies
    api = "/g/api/token?ch=f1-sprint"
    assert site.get(api).status_code == 403
    jar = dict(site.http.cookies)
    site.http.cookies.clear()
    assert site.get(api, x_requested_with="XMLHttpRequest").status_code == 403
    site.http.cookies.set("gsid", "forged.cookie")
    assert site.get(api, x_requested_with="XMLHttpRequest").status_code == 403
    site.http.cookies.clear()
    site.http.cookies.update(jar)
    reply = site.get(api, x_requested_with="XMLHttpRequest")
    assert reply.status_code == 200
    data = reply.json()
    assert data["ok"]
    assert data["ttl"] == 90
    stream = f"/g/cdn/xhr-token/live/master.m3u8?token={data['token']}&expires={data['expires']}"
    site.http.cookies.clear()  # the CDN wants the token, not the cookie
    playlist = plays(site, stream)
    assert f"token={data['token']}" in playlist.segments[-1].uri
    assert refused(site.get("/g/cdn/xhr-token/live/master.m3u8"), "token")
    assert refused(site.get(stream.replace(data["token"], "x" + data["token"][1:])), "invalid")
    clock.advance(91)
    assert refused(site.get(stream), "expired")


def test_click_to_play_embed_is_cross_site_and_its_url_obfuscated(site: Site) -> None:
    """The page embeds the player from the other host name; the embed wants the partner site as
    Referer and hides its playlist path in an obfuscated string array."""
    page = site.page("click-to-play")
    embed = re.search(r"<iframe src='([^']+)'", page)[1]  # type: ignore[index]
    assert embed.startswith(f"{site.alt}/g/embed/click/")
    assert refused(site.get(embed), "referer")
    assert refused(site.get(embed, referer=f"{site.alt}/g/p/click-to-play"))
    reply = site.get(embed, referer=f"{site.base}/")
    assert reply.status_code == 200
    assert "m3u8" not in reply.text
    assert "play-overlay" in reply.text
    strings = [base64.b64decode(s).decode() for s in
               json.loads(re.search(r"var _0x3a7f=(\[[^\]]*\])", reply.text)[1])]  # type: ignore[index]
    path = next(s for s in strings if s.endswith(".m3u8"))
    master = f"{site.alt}{path}"
    assert refused(site.get(master))
    assert refused(site.get(master, referer=f"{site.base}/g/embed/click/k7Qm2x"))
    plays(site, master, referer=embed)


@pytest.mark.parametrize("agent", [
    "python-httpx/0.28.1", "python-requests/2.32.3", "Python-urllib/3.11",
    "yt-dlp/2026.10.26", "streamlink/8.6.3", "curl/8.5.0", "Wget/1.21.3", "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 "
    "Safari/537.36", ""])
def test_ua_origin_cdn_refuses_library_agents(site: Site, agent: str) -> None:
    """Library and headless User-Agents get 403 even with the right Origin."""
    master = f"{site.alt}/g/cdn/ua-origin/live/master.m3u8"
    assert refused(site.get(master, user_agent=agent, origin=site.base), "bot filter")


def test_ua_origin_cdn_wants_a_browser_and_the_embedding_sites_origin(site: Site) -> None:
    """A browser User-Agent (or ffmpeg's, which is no library) with the page's Origin plays."""
    page = site.page("ua-origin")
    master = f"{site.alt}/g/cdn/ua-origin/live/master.m3u8"
    assert f"<source src='{master}'" in page
    assert refused(site.get(master), "origin")
    assert refused(site.get(master, origin=site.alt), "origin")
    assert refused(site.get(master, origin="https://evil.example"), "origin")
    plays(site, master, origin=site.base)
    plays(site, master, origin=site.base, user_agent="Lavf/59.27.100")


def test_decoy_page_lists_a_vod_ad_before_the_live_stream(site: Site) -> None:
    """The ad is a short ended VOD playlist of real media; the live one follows and is guarded."""
    page = site.page("decoy-vod")
    ad, live = re.findall(r"file: \"([^\"]+)\"", page)
    assert page.index(ad) < page.index(live)
    reply = site.get(ad)
    vod = m3u8.loads(reply.text)
    assert vod.is_endlist
    assert vod.playlist_type == "vod"
    assert len(vod.segments) == 3
    assert site.get(urljoin(f"{site.base}{ad}", vod.segments[0].uri)).content[0] == 0x47
    assert refused(site.get(live))
    plays(site, live, referer=f"{site.base}/g/p/decoy-vod")


def png_end(data: bytes) -> int:
    """Where a PNG ends (after IEND), checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while True:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        pos += 12 + length
        if kind == b"IEND":
            return pos


def test_cloaked_segments_are_a_real_png_followed_by_the_mpeg_ts(site: Site) -> None:
    """.png URLs, image/png, a whole 1x1 PNG, then TS packets (0x47 every 188 bytes)."""
    master = "/g/cdn/cloaked/live/master.m3u8"
    ref = {"referer": f"{site.base}/g/p/cloaked"}
    assert refused(site.get(master))
    playlist = plays(site, master, **ref)
    uri = playlist.segments[-1].uri
    assert uri.endswith(".png")
    reply = site.get(f"/g/cdn/cloaked/live/360p/{uri}", **ref)
    assert reply.headers["content-type"] == "image/png"
    end = png_end(reply.content)
    assert end == len(PNG_1X1)
    assert struct.unpack(">II", reply.content[16:24]) == (1, 1)
    ts = reply.content[end:]
    assert len(ts) % 188 == 0
    assert all(ts[i] == 0x47 for i in range(0, len(ts), 188))
    assert refused(site.get(f"/g/cdn/cloaked/live/360p/{uri}"))


def test_redirect_cdn_sends_the_player_to_a_tokened_host_that_expires(site: Site,
                                                                      clock: FakeClock) -> None:
    """The page's URL 302s (for the site's own pages only) to the other host name with a 120 s
    token; that CDN needs no Referer, only the token."""
    page = site.page("redirect-cdn")
    url = "/g/go/redirect-cdn/master.m3u8"
    assert f"<source src='{url}'" in page
    assert refused(site.get(url))
    reply = site.get(url, referer=f"{site.base}/g/p/redirect-cdn")
    assert reply.status_code == 302
    target = reply.headers["location"]
    assert target.startswith(f"{site.alt}/g/cdn/edge/live/master.m3u8?expires=")
    playlist = plays(site, target)
    assert "token=" in playlist.segments[-1].uri
    assert refused(site.get(target.split("?")[0]), "token")
    clock.advance(121)
    assert refused(site.get(target), "expired")


def test_every_cdn_is_listed_and_unknown_files_are_404(site: Site) -> None:
    """No CDN serves what its layout does not name."""
    assert set(CDNS) >= {"noext", "packed", "base64", "edge", "cloaked"}
    ref = {"referer": f"{site.base}/g/p/noext"}
    assert site.get("/g/cdn/noext/live/hd/s/99999999999", **ref).status_code == 404
    assert site.get("/g/cdn/noext/live/../../etc/passwd", **ref).status_code == 404
    assert site.get("/g/cdn/nope/live/master.m3u8").status_code == 404
