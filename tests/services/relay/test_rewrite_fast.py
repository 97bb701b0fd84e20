"""The rewriter's fast paths against its line-by-line reference: a plain playlist minted a list
at a time, and a refreshed live window that reuses the last rewrite, must give exactly the text
:func:`rewrite_by_lines` gives, for any playlist; and the relay's batch minter must mint exactly
what it mints one URL at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay import relay as relay_module
from services.relay.relay import SLOT, Relay
from services.relay.rewrite import Refresh, rewrite, rewrite_by_lines
from services.relay.sniff import segment_extension, segment_extensions
from shared.kvmirror import KvMirror
from shared.relay_urls import Signer
from shared.streams import StreamRecord
from tests.services.relay.test_rewrite import Mint

BASE = "https://cdn.test/live/abc/index.m3u8?token=SECRET"

#: URI lines as playlists have them: names beside the playlist, paths, absolute URLs, queries,
#: dot segments, odd extensions, and the unusual (spaces, data: URLs, a lone dot).
uri = st.one_of(
    st.from_regex(r"seg_[0-9]{1,6}\.(ts|aac|m4s|png|css)(\?sig=[a-z0-9]{0,8})?", fullmatch=True),
    st.from_regex(r"(\.\./|\./|/)[a-z0-9]{1,6}/[a-z0-9_]{1,8}(\.ts)?", fullmatch=True),
    st.from_regex(r"https://[a-z]{1,6}\.test/[a-z0-9/]{0,12}[a-z]\.(ts|jpg)(\?t=[a-z:]{0,5})?",
                  fullmatch=True),
    st.from_regex(r"\?[a-z]=[0-9]{1,3}", fullmatch=True),
    st.sampled_from([" seg.ts", "seg.ts ", "\tx.ts", ".", "..", "data:video/mp2t,AAAA",
                     "a:b.ts", ".hidden.ts", "x.TS", "seg.ts#frag"]),
)
#: Lines between URIs: per-segment tags, tags that change what follows, comments, blanks.
tag = st.sampled_from([
    "#EXTINF:2.000,", "#EXT-X-PROGRAM-DATE-TIME:2026-05-03T20:00:00.000Z", "#EXT-X-DISCONTINUITY",
    "# a comment", "", "#EXT-X-GAP", "#EXT-X-BYTERANGE:100@0", '#EXT-X-KEY:METHOD=NONE',
    '#EXT-X-MAP:URI="init.mp4"', "#EXT-X-STREAM-INF:BANDWIDTH=1", "#EXT-X-DEFINE:NAME=\"a\",VALUE=\"b\"",
    "   ", "#EXTINF:2,$", "\r",
])
segment = st.tuples(st.lists(tag, max_size=3), uri)


def text_of(segments: list[tuple[list[str], str]], header: list[str], eol: str = "\n") -> str:
    lines = ["#EXTM3U", *header]
    for tags, line in segments:
        lines += [*tags, line]
    return eol.join([*lines, ""])


def both(text: str, **kwargs: object) -> tuple[str, str]:
    """(the fast rewrite, the reference) with the same minter state, or both errors alike."""
    fast_mint, reference_mint = Mint(), Mint()
    try:
        reference = rewrite_by_lines(text, BASE, reference_mint)
    except ValueError as exc:
        with pytest.raises(type(exc), match=str(exc).split("{")[0][:20] or None):
            rewrite(text, BASE, fast_mint, **kwargs)  # type: ignore[arg-type]
        return "", ""
    return rewrite(text, BASE, fast_mint, **kwargs), reference  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.lists(segment, max_size=25), st.lists(st.sampled_from(
    ["#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:7"]), max_size=3),
    st.sampled_from(["\n", "\r\n"]))
def test_any_playlist_is_rewritten_as_line_by_line(
        segments: list[tuple[list[str], str]], header: list[str], eol: str) -> None:
    fast, reference = both(text_of(segments, header, eol))
    assert fast == reference


def window(first: int, count: int, names: list[str], header: str = "") -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    if header:
        lines.append(header)
    for n in range(first, first + count):
        lines += [f"#EXTINF:2.000,{n}", names[n % len(names)].format(n=n)]
    return "\n".join([*lines, ""])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from(
    ["", "#EXT-X-DISCONTINUITY-SEQUENCE:1", '#EXT-X-KEY:METHOD=AES-128,URI="k.key"'])),
    min_size=1, max_size=12),
    st.lists(st.sampled_from(["seg_{n}.ts?sig=abc", "s{n}.png", "/abs/{n}.ts", "same.ts",
                              "https://other.test/{n}.ts", "seg_{n}.ts "]), min_size=1, max_size=3))
def test_a_refreshed_window_is_rewritten_as_line_by_line(
        moves: list[tuple[int, int, str]], names: list[str]) -> None:
    """Windows that move on by some segments, grow, shrink, repeat or gain a tag: each refresh
    gives the reference's text for it, whatever the last one was."""
    refresh, mint, reference_mint = Refresh(), Mint(), Mint()
    first, count = 100, 6
    for step, grow, header in moves:
        first, count = first + step, max(1, count + grow - 2)
        text = window(first, count, names, header)
        try:
            reference = rewrite_by_lines(text, BASE, reference_mint)
        except ValueError:
            continue
        assert rewrite(text, BASE, mint, refresh=refresh) == reference


@settings(max_examples=200, deadline=None)
@given(st.lists(uri, max_size=30), st.sampled_from([None, ".aac", ".ts"]))
def test_extensions_of_many_are_those_of_each(urls: list[str], learned: str | None) -> None:
    absolute = [f"https://cdn.test/p/{u.strip()}" for u in urls]
    assert segment_extensions(absolute, learned) == [
        segment_extension(u, learned) for u in absolute]


@given(st.lists(st.text(max_size=40), max_size=20))
def test_refs_of_many_are_those_of_each(urls: list[str]) -> None:
    signer = Signer(b"k" * 32)
    assert signer.refs(urls) == [signer.ref(u) for u in urls]


def test_the_relay_mints_a_list_as_it_mints_each_and_forgets_oldest_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay's batch minter: the same paths as one at a time; over MAX_REFS the oldest refs
    go, and a refresh after that mints again (no served ref is one the relay has forgotten)."""
    monkeypatch.setattr(relay_module, "MAX_REFS", 40)
    one = Relay(Signer(b"s" * 32), KvMirror(StreamRecord), None)  # type: ignore[arg-type]
    many = Relay(Signer(b"s" * 32), KvMirror(StreamRecord), None)  # type: ignore[arg-type]
    refresh = Refresh()
    key = "2026.x.race.s"
    for first in range(0, 200, 7):
        text = window(first, 30, ["seg_{n}.ts"])
        single, _ = one._minter(key, SLOT, BASE)
        mint, batch = many._minter(key, SLOT, BASE)
        out = rewrite(text, BASE, mint, mint_many=batch, refresh=refresh,
                      generation=many._forgotten.get(key, 0))
        assert out == rewrite_by_lines(text, BASE, single)
        served = [line.rsplit("/", 1)[1].partition(".")[0] for line in out.split("\n")
                  if line.startswith(SLOT)]
        assert all(many._ref(key, ref) is not None for ref in served)
        assert len(many.refs[key]) <= 40
    assert many._forgotten[key] > 0
