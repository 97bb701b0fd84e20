"""The playlist rewriter alone: golden cases per tag, m3u8 as an oracle, and hostile input."""

from __future__ import annotations

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay.rewrite import Kind, PlaylistError, rewrite
from services.relay.sniff import segment_extension

BASE = "https://cdn.test/live/abc/index.m3u8?token=SECRET"


class Mint:
    """A test minter: numbered relay URLs with the extension the relay would give them (the
    rewriter's, else the segment's by name), and a way back."""

    def __init__(self, learned: str | None = None) -> None:
        self.urls: dict[str, str] = {}
        self.back: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.learned = learned

    def __call__(self, url: str, kind: str, ext: str) -> str:
        if url not in self.urls:
            relay = f"/r/{kind}/{len(self.urls)}{ext or segment_extension(url, self.learned)}"
            self.kinds[url] = kind
            self.urls[url] = relay
            self.back[relay] = url
        return self.urls[url]


MASTER = """#EXTM3U\r
#EXT-X-VERSION:7\r
#EXT-X-DEFINE:NAME="cdn",VALUE="https://cdn2.test"\r
#EXT-X-DEFINE:QUERYPARAM="token"\r
#EXT-X-CONTENT-STEERING:SERVER-URI="/steer.json",PATHWAY-ID="A"\r
#EXT-X-SESSION-DATA:DATA-ID="com.x.title",VALUE="Race"\r
#EXT-X-SESSION-DATA:DATA-ID="com.x.info",URI="info.json"\r
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-id",KEYFORMAT="com.apple.streamingkeydelivery"\r
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,URI="audio/en.m3u8"\r
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="sub",NAME="English",URI="../subs/en.m3u8?t={$token}"\r
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"\r
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"\r
720/index.m3u8\r
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\r
{$cdn}/360/index.m3u8\r
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="iframes.m3u8"\r
#EXT-UNKNOWN-TAG:keep me exactly , "as is"\r
"""


def test_master_playlist_golden() -> None:
    """Every URI in a master playlist is rewritten by position; everything else is kept."""
    mint = Mint()
    out = rewrite(MASTER, BASE, mint)
    assert out == """#EXTM3U\r
#EXT-X-VERSION:7\r
#EXT-X-DEFINE:NAME="cdn",VALUE="https://cdn2.test"\r
#EXT-X-CONTENT-STEERING:SERVER-URI="/r/d/0.json",PATHWAY-ID="A"\r
#EXT-X-SESSION-DATA:DATA-ID="com.x.title",VALUE="Race"\r
#EXT-X-SESSION-DATA:DATA-ID="com.x.info",URI="/r/d/1.json"\r
#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-id",KEYFORMAT="com.apple.streamingkeydelivery"\r
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=YES,URI="/r/p/2.m3u8"\r
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="sub",NAME="English",URI="/r/p/3.m3u8"\r
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"\r
#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"\r
/r/p/4.m3u8\r
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\r
/r/p/5.m3u8\r
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="/r/p/6.m3u8"\r
#EXT-UNKNOWN-TAG:keep me exactly , "as is"\r
"""
    assert mint.back == {
        "/r/d/0.json": "https://cdn.test/steer.json",
        "/r/d/1.json": "https://cdn.test/live/abc/info.json",
        "/r/p/2.m3u8": "https://cdn.test/live/abc/audio/en.m3u8",
        "/r/p/3.m3u8": "https://cdn.test/live/subs/en.m3u8?t=SECRET",
        "/r/p/4.m3u8": "https://cdn.test/live/abc/720/index.m3u8",
        "/r/p/5.m3u8": "https://cdn2.test/360/index.m3u8",
        "/r/p/6.m3u8": "https://cdn.test/live/abc/iframes.m3u8",
    }
    assert "SECRET" not in out
    assert "cdn.test" not in out


MEDIA = """#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.test/k?id=1",IV=0x0123456789ABCDEF0123456789ABCDEF
#EXT-X-MAP:URI="init.mp4",BYTERANGE="720@0"
#EXT-X-PROGRAM-DATE-TIME:2026-05-03T20:00:00.000Z
#EXT-X-DATERANGE:ID="ad1",CLASS="com.apple.hls.interstitial",START-DATE="2026-05-03T20:00:02Z",X-ASSET-URI="ads/ad.m3u8",X-ASSET-LIST="ads/list.json"
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000@720
media.mp4
#EXTINF:2.000,
#EXT-X-BYTERANGE:1000
media.mp4
#EXT-X-KEY:METHOD=NONE
#EXTINF:2.000,title with, a comma
//cdn3.test/seg/102.m4s
#EXT-X-PART:DURATION=0.5,URI="part103.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part103.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../360/index.m3u8",LAST-MSN=102,LAST-PART=0
"""


def test_media_playlist_golden() -> None:
    """Segments, keys, maps, parts, hints, reports and date ranges; byte ranges keep meaning;
    encrypted or byte-ranged media is raw (never cleaned); each URL names what it points at."""
    mint = Mint()
    out = rewrite(MEDIA, BASE, mint)
    lines = out.splitlines()
    assert lines[6] == ('#EXT-X-KEY:METHOD=AES-128,URI="/r/k/0.key",'
                        "IV=0x0123456789ABCDEF0123456789ABCDEF")
    assert lines[7] == '#EXT-X-MAP:URI="/r/r/1.mp4",BYTERANGE="720@0"'
    assert lines[9] == ('#EXT-X-DATERANGE:ID="ad1",CLASS="com.apple.hls.interstitial",'
                        'START-DATE="2026-05-03T20:00:02Z",X-ASSET-URI="/r/p/2.m3u8",'
                        'X-ASSET-LIST="/r/d/3.json"')
    # The same resource twice: the same relay URL, so an offset-less byte range still follows on.
    assert lines[12] == lines[15] == "/r/r/4.m4s"
    assert lines[14] == "#EXT-X-BYTERANGE:1000"
    assert lines[17] == "#EXTINF:2.000,title with, a comma"
    assert lines[18] == "/r/m/5.m4s"  # METHOD=NONE and no byte range: cleaned media again
    assert lines[19] == '#EXT-X-PART:DURATION=0.5,URI="/r/m/6.m4s",INDEPENDENT=YES'
    assert lines[20] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="/r/m/7.m4s"'
    assert lines[21] == '#EXT-X-RENDITION-REPORT:URI="/r/p/8.m3u8",LAST-MSN=102,LAST-PART=0'
    assert mint.back["/r/m/5.m4s"] == "https://cdn3.test/seg/102.m4s"
    assert mint.back["/r/p/8.m3u8"] == "https://cdn.test/live/360/index.m3u8"
    for original, rewritten in zip(MEDIA.splitlines(), lines, strict=True):
        if "URI" not in original and not original.endswith((".mp4", ".m4s")):
            assert rewritten == original


def test_m3u8_parses_the_rewritten_playlist_to_the_same_structure() -> None:
    """m3u8 as the oracle: same segments, durations, byte ranges, keys, parts and variants."""
    for text in (MEDIA, MASTER.replace("{$cdn}", "https://cdn2.test")
                 .replace('#EXT-X-DEFINE:QUERYPARAM="token"\r\n', "").replace("{$token}", "x")):
        mint = Mint()
        before = m3u8.loads(text, uri=BASE)
        after = m3u8.loads(rewrite(text, BASE, mint), uri="https://relay.test/r/")
        assert len(after.segments) == len(before.segments)
        for a, b in zip(after.segments, before.segments, strict=True):
            assert (a.duration, a.byterange, a.title) == (b.duration, b.byterange, b.title)
            assert (a.uri is None) == (b.uri is None)  # a segment of parts only has no URI
            if a.uri is not None:
                assert mint.back[a.uri] == b.absolute_uri
            assert [mint.back[p.uri] for p in a.parts] == [p.absolute_uri for p in b.parts]
        assert [p.stream_info.bandwidth for p in after.playlists] == [
            p.stream_info.bandwidth for p in before.playlists]
        assert [mint.back[p.uri] for p in after.playlists] == [p.absolute_uri for p in before.playlists]
        assert [k.method if k else None for k in after.keys] == [
            k.method if k else None for k in before.keys]
        assert len(after.media) == len(before.media)


@pytest.mark.parametrize(("text", "message"), [
    ("<html><body>not a playlist</body></html>", "no #EXTM3U"),
    ('{"json": true}', "no #EXTM3U"),
    ("", "no #EXTM3U"),
    ("#EXTM3U\n#EXTINF:2,\n{$nope}/a.ts\n", "undefined variable"),
    ('#EXTM3U\n#EXT-X-DEFINE:QUERYPARAM="missing"\n', "QUERYPARAM"),
    ("#EXTM3U\n" + "x" * 70_000 + "\n", "longer than"),
    ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="unterminated\n', "unterminated"),
])
def test_bad_playlists_give_one_typed_error(text: str, message: str) -> None:
    """HTML, JSON, empty, bad variables, huge lines, broken quotes: PlaylistError, readable."""
    with pytest.raises(PlaylistError, match=message):
        rewrite(text, BASE, Mint())


segment_uri = st.one_of(
    st.from_regex(r"[a-z0-9_]{1,12}\.(ts|m4s|aac|mp4)", fullmatch=True),
    st.from_regex(r"https://[a-z]{1,8}\.test/[a-z0-9/]{0,20}\.ts\?tok=[A-Za-z0-9]{0,12}",
                  fullmatch=True),
    st.from_regex(r"/[a-z0-9/]{1,20}\.ts", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 10, allow_nan=False), segment_uri), min_size=1,
                max_size=40), st.sampled_from(["\n", "\r\n"]))
def test_generated_playlists_keep_their_segments_and_hide_upstream(
        segments: list[tuple[float, str]], eol: str) -> None:
    """Any generated media playlist: same segments, and no upstream host left in the output."""
    text = eol.join(["#EXTM3U", "#EXT-X-TARGETDURATION:10",
                     *[f"#EXTINF:{d:.3f},{eol}{u}" for d, u in segments], ""])
    mint = Mint()
    out = rewrite(text, BASE, mint)
    assert ".test" not in out
    parsed = m3u8.loads(out)
    assert [mint.back[s.uri] for s in parsed.segments] == [
        s.absolute_uri for s in m3u8.loads(text, uri=BASE).segments]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500).map(lambda t: "#EXTM3U\n" + t))
def test_mangled_input_gives_rewritten_text_or_the_typed_error(text: str) -> None:
    """Arbitrary text after the header: output or PlaylistError, never another exception."""
    try:
        out = rewrite(text, BASE, Mint())
    except PlaylistError:
        return
    assert out.startswith("#EXTM3U")


def uris(out: str) -> list[str]:
    """The URI lines and URI attributes of a rewritten playlist, in order."""
    found = []
    for line in out.splitlines():
        if line.startswith("/r/"):
            found.append(line)
        elif 'URI="/r/' in line:
            found.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return found


def test_cloaked_names_never_reach_players() -> None:
    """Segments named .png/.jpg/.css/.js/.php or nothing get .ts; playlists named .css, .txt,
    .php, nothing or a token get .m3u8, whatever the upstream calls them."""
    master = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmono.css\n#EXT-X-STREAM-INF:BANDWIDTH=2\n"
              "v2.txt\n#EXT-X-STREAM-INF:BANDWIDTH=3\nplay.php?id=7\n"
              "#EXT-X-STREAM-INF:BANDWIDTH=4\nhttps://cdn.test/hls/AbC123xyz\n")
    assert [u.rsplit(".", 1)[1] for u in uris(rewrite(master, BASE, Mint()))] == ["m3u8"] * 4
    media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "".join(
        f"#EXTINF:2,\n{name}\n" for name in ("0.png", "1.jpg?x=.ts", "2.css", "3.js", "seg/4",
                                             "5.php?v=1", "6.html", "7.TS", "8.jpeg#f"))
    assert [u.rsplit(".", 1)[1] for u in uris(rewrite(media, BASE, Mint()))] == ["ts"] * 9


def test_fmp4_maps_parts_and_hints_are_typed_by_position() -> None:
    """EXT-X-MAP is an init section (.mp4), whatever its name; segments, parts and part hints
    after it are fragments (.m4s); a map hint is an init section; a map named .ts types a TS."""
    text = ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.png\"\n#EXTINF:2,\nseg1.png\n"
            "#EXT-X-PART:DURATION=0.5,URI=\"p.0.jpg\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p.1\"\n"
            "#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init2\"\n")
    mint = Mint()
    assert [u[-4:] for u in uris(rewrite(text, BASE, mint))] == [
        ".mp4", ".m4s", ".m4s", ".m4s", ".mp4"]
    assert set(mint.kinds.values()) == {Kind.MEDIA}
    ts_map = "#EXTM3U\n#EXT-X-MAP:URI=\"pat.ts\"\n#EXTINF:2,\nseg1\n#EXTINF:2,\nseg2.m4s\n"
    assert [u[-3:] for u in uris(rewrite(ts_map, BASE, Mint()))] == [".ts", ".ts", ".ts"]


def test_packed_audio_and_subtitles_keep_what_their_names_say() -> None:
    """Without a map, a media name (.aac, .ac3, .mp3, .vtt) is kept; a sibling's sniffed type
    (learned) names the rest, .png included."""
    text = "#EXTM3U\n" + "".join(f"#EXTINF:2,\n{n}\n" for n in ("a.aac", "b.AC3", "c.mp3", "d.webvtt"))
    assert [u.rsplit(".", 1)[1] for u in uris(rewrite(text, BASE, Mint()))] == [
        "aac", "ac3", "mp3", "vtt"]
    cloaked = "#EXTM3U\n#EXTINF:2,\nx.png\n#EXTINF:2,\ny\n"
    assert [u[-4:] for u in uris(rewrite(cloaked, BASE, Mint(learned=".aac")))] == [".aac"] * 2


def test_encrypted_and_byte_ranged_media_is_raw() -> None:
    """Media under a key whose METHOD is not NONE, or behind a byte range (that one line only),
    is raw: relayed byte for byte, since cleaning would break decryption or shift offsets."""
    text = ("#EXTM3U\n#EXTINF:2,\nplain0.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"k1\"\n#EXTINF:2,\n"
            "enc1.ts\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k2\",KEYFORMAT=\"identity\"\n"
            "#EXTINF:2,\nenc2.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:2,\nplain3.ts\n"
            "#EXT-X-BYTERANGE:500@0\n#EXTINF:2,\nrange4.ts\n#EXTINF:2,\nplain5.ts\n"
            "#EXT-X-PART:DURATION=1,URI=\"part6.ts\",BYTERANGE=\"100@0\"\n"
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part7.ts\",BYTERANGE-START=100\n")
    mint = Mint()
    rewrite(text, BASE, mint)
    kinds = {url.rsplit("/", 1)[1]: kind for url, kind in mint.kinds.items()}
    assert kinds == {"plain0.ts": Kind.MEDIA, "k1": Kind.KEY, "enc1.ts": Kind.RAW,
                     "k2": Kind.KEY, "enc2.ts": Kind.RAW, "plain3.ts": Kind.MEDIA,
                     "range4.ts": Kind.RAW, "plain5.ts": Kind.MEDIA, "part6.ts": Kind.RAW,
                     "part7.ts": Kind.RAW}
    assert all(u.endswith((".ts", ".key")) for u in mint.back)


def test_a_key_tag_in_a_master_playlist_is_still_rewritten() -> None:
    """A malformed master with a key or map tag leaks no upstream URL; variants stay .m3u8."""
    text = ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="https://keys.test/k"\n'
            '#EXT-X-MAP:URI="init.mp4"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n')
    out = rewrite(text, BASE, Mint())
    assert ".test" not in out
    assert uris(out)[-1].endswith(".m3u8")


cloaked_name = st.one_of(
    st.from_regex(r"[a-z0-9_]{1,12}\.(png|jpg|jpeg|gif|css|js|php|txt|html|ico|webp)",
                  fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9_]{1,24}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,8}\.(png|css)\?[a-z]=[a-z0-9.]{0,10}", fullmatch=True),
)
FFMPEG_EXTENSIONS = {"ts", "m4s", "mp4", "aac", "ac3", "mp3", "vtt", "m3u8", "key", "json"}


@settings(max_examples=150, deadline=None)
@given(st.lists(cloaked_name, min_size=1, max_size=30), st.booleans())
def test_every_relay_url_carries_a_media_extension(names: list[str], fmp4: bool) -> None:
    """Any upstream naming: every relay URL ends in an extension players accept, by position."""
    head = '#EXTM3U\n#EXT-X-MAP:URI="init"\n' if fmp4 else "#EXTM3U\n"
    text = head + "".join(f"#EXTINF:2,\n{n}\n" for n in names)
    found = uris(rewrite(text, BASE, Mint()))
    assert {u.rsplit(".", 1)[1] for u in found} <= FFMPEG_EXTENSIONS
    assert all(u.endswith(".m4s") for u in found[1:]) if fmp4 else \
        all(u.endswith(".ts") for u in found)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(cloaked_name, st.sampled_from(["", "AES-128", "SAMPLE-AES", "NONE"])),
                min_size=1, max_size=30))
def test_every_encrypted_segment_is_raw(segments: list[tuple[str, str]]) -> None:
    """Any mix of keys: a segment is raw exactly when the last key before it encrypts."""
    lines, expected, method = ["#EXTM3U"], [], "NONE"
    for i, (name, key) in enumerate(segments):
        if key:
            method = key
            lines.append(f'#EXT-X-KEY:METHOD={key}' + ("" if key == "NONE" else f',URI="k{i}"'))
        lines += ["#EXTINF:2,", f"{name}/{i}"]
        expected.append(Kind.MEDIA if method == "NONE" else Kind.RAW)
    mint = Mint()
    rewrite("\n".join(lines) + "\n", BASE, mint)
    assert [kind for kind in mint.kinds.values() if kind != Kind.KEY] == expected


def test_relative_uris_resolve_against_the_path_when_the_query_holds_slashes() -> None:
    """An Akamai-style token query with slashes does not move the folder relative names
    resolve against (it did: every segment became the playlist itself)."""
    base = "https://cdn.test/live/a/index.m3u8?hdnts=exp=1~acl=/live/*~hmac=ab"
    seen: list[str] = []

    def mint(url: str, *_: object) -> str:
        seen.append(url)
        return "x"

    rewrite("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg1.ts\n", base, mint)
    assert seen == ["https://cdn.test/live/a/seg1.ts"]
