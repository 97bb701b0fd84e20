"""What a relayed resource is, told by its first bytes, and media segments cleaned of what is
cloaked in front of their MPEG-TS. Pure: bytes in, decisions and bytes out.

Players decide by the bytes and the URL together: ffmpeg (and Jellyfin, Kodi, VLC on top of it)
refuses a segment URL whose extension is not a media one or does not match the format it
detects, and probes a segment that opens with a picture as a picture. So the relay names each
resource by what it is (``.ts``, ``.m4s``, ``.aac``...), answers with the matching
Content-Type, and drops cloaking before any viewer or cache sees it.

Cloaking seen on real sites: a PNG signature or a whole 1x1 PNG, JPEG or GIF bytes, or 0xFF /
0x00 padding before the TS packets. Where the TS starts is the first run of sync bytes: 0x47 at
``k``, ``k + 188``, ``k + 376``... for :data:`RUN` packets (a stray 0x47 in the cloak makes such a
run one time in 256 per packet, five in a row one time in a trillion). A run found within
:data:`BOUND` bytes wins over anything the first bytes look like, since a cloak may begin with
anything (an ID3 header, ``WEBVTT``, an AC-3 sync word). A body in which no run starts within
the bound is never altered: it is named by its first bytes (an ISO BMFF box, ID3 or ADTS audio,
a playlist, WebVTT) or not at all, and passes unchanged, since a format the relay does not know
may still play somewhere, and a 502 would stop it for everyone. So a TS is released as soon as
its run is seen, anything else once the bound (or its end) has arrived. Encrypted segments are
never given to this module (their bytes are noise until decrypted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TS_PACKET: Final = 188
SYNC: Final = 0x47
#: Sync bytes in a row, one per packet, that mark where an MPEG-TS starts.
RUN: Final = 5
#: A body that has ended may show fewer packets after its cloak.
MIN_RUN: Final = 3
#: How far into a segment its TS may start: the bytes held back until it is known.
BOUND: Final = 64 * 1024
_RUN_BYTES: Final = bytes([SYNC]) * RUN
_PNG: Final = b"\x89PNG\r\n\x1a\n"
_BOM: Final = b"\xef\xbb\xbf"


class Media:
    """What a resource is, as the extension its relay URL carries."""

    TS: Final = ".ts"
    INIT: Final = ".mp4"
    FRAGMENT: Final = ".m4s"
    AAC: Final = ".aac"
    AC3: Final = ".ac3"
    EC3: Final = ".ec3"
    MP3: Final = ".mp3"
    VTT: Final = ".vtt"
    PLAYLIST: Final = ".m3u8"
    KEY: Final = ".key"
    DATA: Final = ".json"


CONTENT_TYPES: Final = {
    Media.TS: "video/mp2t", Media.INIT: "video/mp4", Media.FRAGMENT: "video/iso.segment",
    Media.AAC: "audio/aac", Media.AC3: "audio/ac3", Media.EC3: "audio/eac3",
    Media.MP3: "audio/mpeg", Media.VTT: "text/vtt", Media.PLAYLIST: "application/vnd.apple.mpegurl",
    Media.KEY: "application/octet-stream", Media.DATA: "application/json",
}
#: What a segment may be (a sibling's sniffed type names the playlist's other segments).
SEGMENTS: Final = frozenset({Media.TS, Media.FRAGMENT, Media.INIT, Media.AAC, Media.AC3,
                             Media.EC3, Media.MP3, Media.VTT})
#: Upstream extensions that say what a segment is (anything else, ``.png`` included, says nothing).
_BY_NAME: Final = {
    ".ts": Media.TS, ".m2ts": Media.TS, ".mts": Media.TS, ".mpegts": Media.TS,
    ".aac": Media.AAC, ".adts": Media.AAC, ".ac3": Media.AC3, ".ec3": Media.EC3,
    ".eac3": Media.EC3, ".mp3": Media.MP3, ".vtt": Media.VTT, ".webvtt": Media.VTT,
    ".mp4": Media.INIT, ".m4s": Media.FRAGMENT, ".m4v": Media.FRAGMENT, ".m4a": Media.FRAGMENT,
    ".cmfv": Media.FRAGMENT, ".cmfa": Media.FRAGMENT,
}
#: Audio an upstream's Content-Type may name (checked when the bytes do not tell).
_BY_TYPE: Final = {
    "audio/aac": Media.AAC, "audio/x-aac": Media.AAC, "audio/aacp": Media.AAC,
    "audio/ac3": Media.AC3, "audio/eac3": Media.EC3, "audio/mpeg": Media.MP3,
    "audio/mp3": Media.MP3, "text/vtt": Media.VTT,
}
_INIT_BOXES: Final = frozenset({b"ftyp", b"moov"})
_FRAGMENT_BOXES: Final = frozenset({b"styp", b"moof", b"sidx", b"emsg", b"prft", b"mdat"})


@dataclass(frozen=True)
class Sniffed:
    """What a body is (``media``: a :class:`Media` extension, ``None`` when unknown), where it
    starts (``start``: the bytes before it are cloaking) and what the cloak looked like."""

    media: str | None
    start: int = 0
    cloak: str = ""


UNKNOWN: Final = Sniffed(None)
_MORE: Final = Sniffed(None, -1)  # not a result: more bytes are needed


def name_extension(url: str) -> str:
    """The extension of a URL's path, lower-case (``.ts``), or ``""``; never from the query."""
    end = len(url)
    for stop in ("?", "#"):
        at = url.find(stop)
        if at != -1:
            end = min(end, at)
    dot = url.rfind(".", 0, end)
    if dot <= url.rfind("/", 0, end) or end - dot > 8:
        return ""
    ext = url[dot:end].lower()
    return ext if ext[1:].isalnum() else ""


def segment_extension(url: str, learned: str | None = None) -> str:
    """The extension of a media segment that the playlist's structure does not type (no
    ``EXT-X-MAP`` before it): what a sibling segment was sniffed to be, else what its name says
    if that is a media extension, else ``.ts`` (the HLS default)."""
    if learned is not None:
        return learned
    by_name = _BY_NAME.get(name_extension(url))
    if by_name == Media.INIT:  # a segment named .mp4 without EXT-X-MAP: self-initialising fMP4
        return Media.INIT
    return by_name or Media.TS


def segment_extensions(urls: list[str], learned: str | None = None) -> list[str]:
    """``[segment_extension(url, learned) for url in urls]``, at a fraction of the cost: what
    follows the last dot before the query names the segment only if it is one of the names
    known here, and none of those holds a slash, so the path's end needs no finding."""
    if learned is not None:
        return [learned] * len(urls)
    joined = "\n".join(urls)
    if "#" in joined:
        heads = [url.split("#", 1)[0].split("?", 1)[0] for url in urls]
    elif "?" in joined:
        heads = [url.partition("?")[0] for url in urls]
    else:
        heads = urls
    get = _BY_NAME.get
    ts = Media.TS
    return [get(tail) or get(tail.lower()) or ts for tail in [h[h.rfind("."):] for h in heads]]


def by_content_type(content_type: str) -> str | None:
    """The media an upstream's Content-Type names, when it names audio or WebVTT."""
    return _BY_TYPE.get(content_type.split(";", maxsplit=1)[0].strip().lower())


def ts_start(data: bytes, *, final: bool) -> int | None:
    """Where the first run of TS sync bytes starts in ``data`` (within :data:`BOUND`), or
    ``None``. With ``final`` (``data`` is the whole body) a run may be cut short by the end:
    at offset 0 any whole run to the end counts, further in at least :data:`MIN_RUN` packets."""
    size = len(data)
    k = data.find(SYNC, 0, BOUND)
    while k != -1:
        if data[k:k + RUN * TS_PACKET:TS_PACKET] == _RUN_BYTES:
            return k
        if final and size - k < RUN * TS_PACKET:
            # The end cuts every later run short too: the longest one left decides.
            packets = (size - k - 1) // TS_PACKET + 1
            if packets >= (1 if k == 0 else MIN_RUN) and \
                    data[k::TS_PACKET] == bytes([SYNC]) * packets:
                return k
        k = data.find(SYNC, k + 1, BOUND)
    return None


def _cloak(prefix: bytes) -> str:
    """A name for what stood in front of the media (for logs and metrics)."""
    if prefix.startswith(_PNG):
        return "png"
    if prefix.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if prefix.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if not prefix.strip(b"\x00\xff"):
        return "padding"
    return "bytes"


def _adts(data: bytes, at: int, final: bool) -> bool | None:
    """Whether an ADTS frame starts at ``at`` and the next one follows it (``None``: too
    short to tell yet)."""
    if len(data) < at + 7:
        return None if not final else False
    if data[at] != 0xFF or data[at + 1] & 0xF6 != 0xF0:
        return False
    length = ((data[at + 3] & 0x03) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
    if length < 7:
        return False
    following = at + length
    if len(data) < following + 2:
        return None if not final else len(data) == following
    return data[following] == 0xFF and data[following + 1] & 0xF6 == 0xF0


def _packed_audio(data: bytes, final: bool) -> Sniffed | None:
    """ID3-tagged packed audio (HLS requires the ID3 timestamp): which codec follows the tag;
    :data:`_MORE` while the tag's end is not in yet; ``None`` when no audio follows it (then
    the tag is no more than a cloak)."""
    if len(data) < 10:
        return None if final else _MORE
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | data[9] & 0x7F
    at = 10 + size + (10 if data[5] & 0x10 else 0)
    if at > BOUND:
        return None
    if len(data) < at + 6:
        return None if final else _MORE
    if data[at:at + 3] == b"ID3":  # a second tag
        return _packed_audio(data[at:], final)
    if data[at:at + 2] == b"\x0b\x77":
        return Sniffed(Media.EC3 if data[at + 5] >> 3 > 10 else Media.AC3)
    if data[at] == 0xFF and data[at + 1] & 0xF6 == 0xF0:
        return Sniffed(Media.AAC)
    if data[at] == 0xFF and data[at + 1] & 0xE0 == 0xE0:
        return Sniffed(Media.MP3)
    return None


def _known(data: bytes, final: bool) -> Sniffed | None:
    """A format other than TS recognised by how the body starts, :data:`_MORE` when more bytes
    are needed to tell, ``None`` when it starts with none of them."""
    size = int.from_bytes(data[:4], "big")
    if len(data) >= 8 and (size == 1 or size >= 8):  # an ISO BMFF box (1: a 64-bit size)
        box = data[4:8]
        if box in _INIT_BOXES:
            return Sniffed(Media.INIT)
        if box in _FRAGMENT_BOXES:
            return Sniffed(Media.FRAGMENT)
    if data.startswith(b"ID3"):
        audio = _packed_audio(data, final)
        if audio is not None:
            return audio
    text = data.removeprefix(_BOM)
    if text.startswith(b"#EXTM3U"):
        return Sniffed(Media.PLAYLIST)
    if text.startswith(b"WEBVTT"):
        return Sniffed(Media.VTT)
    if data.startswith(b"\x0b\x77"):  # AC-3 sync word; E-AC-3 has a bitstream id above 10
        return Sniffed(Media.EC3 if len(data) > 5 and data[5] >> 3 > 10 else Media.AC3)
    adts = _adts(data, 0, final)
    if adts is None:
        return _MORE
    return Sniffed(Media.AAC) if adts else None


def sniff(data: bytes, *, final: bool) -> Sniffed | None:
    """What ``data`` (a body's first bytes; ``final``: all of it) is, or ``None`` while more
    bytes are needed to tell. Only a TS behind a cloak gets a ``start`` other than 0."""
    if not final and len(data) < RUN * TS_PACKET:
        return None
    if not data:
        return UNKNOWN
    start = ts_start(data, final=final)
    if start is not None:
        return Sniffed(Media.TS, start, _cloak(data[:start]) if start else "")
    if not final and len(data) < BOUND + RUN * TS_PACKET:
        return None  # a run may still start within the bound
    known = _known(data, final)
    if known is _MORE:  # pragma: no cover - by the bound every signature fits
        return UNKNOWN
    return known or UNKNOWN


class Cleaner:
    """Cleans one segment as it streams: holds its first bytes until :func:`sniff` can tell
    what they are (at most :data:`BOUND` plus a run), then lets everything through from where
    the media starts. Feed it every chunk, then :meth:`finish`."""

    def __init__(self) -> None:
        self._head = bytearray()
        self.sniffed: Sniffed | None = None

    def feed(self, chunk: bytes) -> bytes:
        """The bytes that may go on now (``b""`` while they are held back)."""
        if self.sniffed is not None:
            return chunk
        if not self._head:  # the common case: the first chunk tells, and is not copied
            sniffed = sniff(chunk, final=False)
            if sniffed is not None:
                self.sniffed = sniffed
                return chunk[sniffed.start:] if sniffed.start else chunk
        self._head += chunk
        return self._decide(sniff(bytes(self._head), final=False))

    def finish(self) -> bytes:
        """The bytes still held back, once the body has ended."""
        if self.sniffed is not None:
            return b""
        return self._decide(sniff(bytes(self._head), final=True))

    def _decide(self, sniffed: Sniffed | None) -> bytes:
        if sniffed is None:
            return b""
        self.sniffed = sniffed
        head, self._head = bytes(self._head), bytearray()
        return head[sniffed.start:]


def clean(body: bytes) -> tuple[bytes, Sniffed]:
    """A whole segment, cleaned, and what it is (the same as streaming it through a Cleaner)."""
    cleaner = Cleaner()
    out = cleaner.feed(body) + cleaner.finish()
    return out, cleaner.sniffed or UNKNOWN
