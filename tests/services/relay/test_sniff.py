"""Sniffing and cleaning alone: real TS from the demo media, cloaks seen on real sites, other
formats told by their first bytes, and property tests over garbage prefixes and chunkings."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay.sniff import (
    BOUND,
    TS_PACKET,
    Cleaner,
    Media,
    by_content_type,
    clean,
    name_extension,
    segment_extension,
    sniff,
)

MEDIA = Path(__file__).resolve().parents[3] / "services" / "demo" / "media"
TS = (MEDIA / "180p" / "0.ts").read_bytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


#: A whole 1x1 PNG, as cloaked segments carry it.
PNG_1X1 = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(b"\0\0\0\0\0")) + _chunk(b"IEND", b""))
CLOAKS = {
    "png": PNG_1X1,
    "png-signature": b"\x89PNG\r\n\x1a\n",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 3,
    "gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\xff" * 20,
    "ff-padding": b"\xff" * 1000,
    "zero-padding": b"\x00" * 188,
}


def streamed(data: bytes, size: int) -> tuple[bytes, Cleaner]:
    """``data`` fed through a Cleaner in chunks of ``size`` bytes."""
    cleaner = Cleaner()
    out = b"".join(cleaner.feed(data[i:i + size]) for i in range(0, len(data), size))
    return out + cleaner.finish(), cleaner


def test_the_demo_media_is_real_ts() -> None:
    """The fixture is what it claims: sync bytes every 188 bytes from the first."""
    assert TS[::TS_PACKET] == b"\x47" * (len(TS) // TS_PACKET)


@pytest.mark.parametrize("name", sorted(CLOAKS))
def test_a_cloak_before_the_ts_is_dropped(name: str) -> None:
    """Image headers, whole images and padding in front of the TS are cut, the TS kept whole."""
    out, sniffed = clean(CLOAKS[name] + TS)
    assert out == TS
    assert sniffed.media == Media.TS
    assert sniffed.start == len(CLOAKS[name])
    assert sniffed.cloak == {"png-signature": "png", "ff-padding": "padding",
                             "zero-padding": "padding"}.get(name, name)


@pytest.mark.parametrize("size", [1, 7, 188, 1000, 4096, 65536])
def test_chunk_sizes_do_not_matter(size: int) -> None:
    """A cleaned segment is the same however its bytes arrive, one at a time included."""
    out, cleaner = streamed(PNG_1X1 + TS[:20_000], size)
    assert out == TS[:20_000]
    assert cleaner.sniffed is not None
    assert cleaner.sniffed.start == len(PNG_1X1)


def test_a_plain_ts_passes_without_being_held() -> None:
    """A chunk that opens with a sync run goes on at once (the same object, not copied)."""
    cleaner = Cleaner()
    chunk = TS[:65536]
    assert cleaner.feed(chunk) is chunk
    assert cleaner.feed(TS[65536:70000]) == TS[65536:70000]


def test_nothing_is_held_beyond_the_bound() -> None:
    """No sync run within the bound: the bytes pass unchanged (an unknown format), and the
    Cleaner holds no more than the bound and one run meanwhile."""
    noise = bytes((i * 7 + 3) % 71 for i in range(BOUND * 2))  # never 0x47 every 188 bytes
    cleaner = Cleaner()
    held = b""
    for i in range(0, len(noise), 1000):
        held += cleaner.feed(noise[i:i + 1000])
        if not held:
            assert i < BOUND + 5 * TS_PACKET
    assert held + cleaner.finish() == noise
    assert cleaner.sniffed is not None
    assert cleaner.sniffed.media is None


def test_a_ts_starting_after_the_bound_is_left_alone() -> None:
    """The search stops at the bound: a TS that far in is not looked for (unknown, unchanged)."""
    data = b"\x00" * (BOUND + 10) + TS
    out, sniffed = clean(data)
    assert out == data
    assert sniffed.media is None


def test_short_bodies() -> None:
    """A TS of one packet is TS; a cloak before three packets is cut; before one, kept."""
    out, sniffed = clean(TS[:188])
    assert (out, sniffed.media) == (TS[:188], Media.TS)
    assert clean(PNG_1X1 + TS[:3 * 188])[0] == TS[:3 * 188]
    assert clean(PNG_1X1 + TS[:188])[0] == PNG_1X1 + TS[:188]
    assert clean(b"")[0] == b""


@pytest.mark.parametrize(("head", "media"), [
    (struct.pack(">I", 24) + b"ftypiso6" + bytes(12), Media.INIT),
    (struct.pack(">I", 1000) + b"moov", Media.INIT),
    (struct.pack(">I", 24) + b"styp" + bytes(16), Media.FRAGMENT),
    (struct.pack(">I", 100) + b"moof", Media.FRAGMENT),
    (b"ID3\x04\x00\x00\x00\x00\x00\x3f" + bytes(63) + b"\xff\xf1\x50\x80\x02\x1f\xfc", Media.AAC),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x0b\x77\x00\x00\x00\x40", Media.AC3),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x0b\x77\x00\x00\x00\x80", Media.EC3),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00", Media.MP3),
    (b"#EXTM3U\n#EXT-X-VERSION:3\n", Media.PLAYLIST),
    (b"\xef\xbb\xbf#EXTM3U\n", Media.PLAYLIST),
    (b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n", Media.VTT),
])
def test_other_formats_are_told_by_their_first_bytes(head: bytes, media: str) -> None:
    """fMP4 boxes, packed audio behind ID3, playlists and WebVTT: named, never altered."""
    body = head + bytes(2000)
    out, sniffed = clean(body)
    assert (out, sniffed.media, sniffed.start) == (body, media, 0)


@pytest.mark.parametrize("cloak", [b"ID3\x04\x00\x00\x00\x00\x00\x00", b"WEBVTT\n", b"\x0b\x77\x00",
                                   struct.pack(">I", 24) + b"ftypisom", b"#EXTM3U\n"])
def test_a_cloak_that_looks_like_another_format_is_still_a_cloak(cloak: bytes) -> None:
    """A sync run within the bound wins over what the first bytes look like."""
    assert clean(cloak + TS)[0] == TS


def test_other_formats_are_held_until_the_bound_then_pass_whole() -> None:
    """An fMP4 fragment streams on once the bound has arrived (a TS run could still have
    started before it), not sooner, and unchanged."""
    body = struct.pack(">I", 24) + b"styp" + bytes(16) + bytes(range(1, 71)) * 2000
    cleaner = Cleaner()
    released = b""
    for i in range(0, len(body), 1024):
        released += cleaner.feed(body[i:i + 1024])
        if i + 1024 < BOUND:
            assert released == b""
    assert released + cleaner.finish() == body
    assert cleaner.sniffed is not None
    assert cleaner.sniffed.media == Media.FRAGMENT


def test_adts_audio_is_aac_and_ff_padding_is_not() -> None:
    """Two chained ADTS frames are AAC; 0xFF padding (an invalid ADTS layer) is not."""
    frame = b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)  # a 16-byte frame
    assert sniff(frame * 100, final=True) is not None
    assert clean(frame * 100)[1].media == Media.AAC
    assert clean(b"\xff" * 2000)[1].media is None


def test_names_and_types() -> None:
    """Extensions come from the path only; segment names say something only when they are
    media names; audio Content-Types are read."""
    assert name_extension("https://x.test/a/seg.PNG?u=b.ts#c") == ".png"
    assert name_extension("https://x.test/a.b/seg") == ""
    assert segment_extension("https://x.test/a.png") == Media.TS
    assert segment_extension("https://x.test/a.aac?x=1") == Media.AAC
    assert segment_extension("https://x.test/a.m4s") == Media.FRAGMENT
    assert segment_extension("https://x.test/a.ts", learned=Media.MP3) == Media.MP3
    assert by_content_type("audio/aac; charset=x") == Media.AAC
    assert by_content_type("image/png") is None


packets = st.integers(1, 40).map(lambda n: TS[:n * TS_PACKET])
no_sync = st.binary(max_size=3000).map(lambda b: b.replace(b"\x47", b"\x48"))
garbage = st.one_of(
    no_sync,
    no_sync.map(lambda b: PNG_1X1 + b),
    no_sync.map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    no_sync.map(lambda b: b"ID3" + b),  # an ID3 tag with no audio after it is a cloak too
    st.integers(1, 5000).map(lambda n: b"\xff" * n),
    st.integers(1, 5000).map(lambda n: b"\x00" * n),
    # a cloak with stray sync bytes, not 188 apart: a run needs them at every packet
    st.lists(st.sampled_from([b"\x47", b"\x00", b"\xffPNG", b"IEND"]), max_size=200).map(
        lambda parts: PNG_1X1 + b"".join(parts)),
)


@settings(max_examples=300, deadline=None)
@given(garbage, st.integers(5, 40), st.integers(1, 70_000))
def test_any_cloak_in_front_of_ts_is_removed(prefix: bytes, n: int, chunk: int) -> None:
    """Random garbage, images or padding before real TS packets: the output is the TS."""
    ts = TS[:n * TS_PACKET]
    out, cleaner = streamed(prefix + ts, chunk)
    assert out == ts
    assert cleaner.sniffed is not None
    assert cleaner.sniffed.media == Media.TS


@settings(max_examples=200, deadline=None)
@given(packets, st.integers(1, 70_000))
def test_real_ts_is_never_altered(ts: bytes, chunk: int) -> None:
    """Real TS of any length, in any chunking, passes byte for byte."""
    out, cleaner = streamed(ts, chunk)
    assert out == ts
    assert cleaner.sniffed is not None
    assert cleaner.sniffed.media == Media.TS


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=20_000), st.integers(1, 30_000))
def test_any_bytes_come_out_as_a_suffix_of_themselves(data: bytes, chunk: int) -> None:
    """Whatever the input, cleaning only ever drops a prefix; and it never raises."""
    out, cleaner = streamed(data, chunk)
    assert data.endswith(out)
    assert cleaner.sniffed is not None
    if cleaner.sniffed.media != Media.TS:
        assert out == data
