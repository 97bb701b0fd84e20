"""How each gallery CDN lays out the demo's live stream: names of the master and media playlists
and segments, what they are served as, and the cloaking of segments as images.

The playlists are the demo's own (``services.demo.live``), renamed: same clock, same media,
same sequence numbers, so every CDN serves the same live stream under its own disguise.
"""

from __future__ import annotations

import posixpath
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from services.demo import live
from services.demo.live import Rendition

HLS: Final = "application/vnd.apple.mpegurl"
X_HLS: Final = "application/x-mpegurl"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


#: A real 1x1 transparent PNG (signature, IHDR, IDAT, IEND): what cloaked segments start with.
PNG_1X1: Final = (b"\x89PNG\r\n\x1a\n"
                  + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
                  + _chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00"))
                  + _chunk(b"IEND", b""))


@dataclass(frozen=True)
class Layout:
    """Where a CDN puts things, relative to ``/g/cdn/<name>/``.

    ``variants`` maps each rendition to its media playlist, relative to the master's folder;
    ``segment`` names a segment (``{seq}``) relative to its media playlist's folder.
    """

    master: str
    variants: dict[str, str]
    segment: str = "{seq}.ts"
    #: Playlists repeat the request's query (its token) on every URI, as tokened CDNs do.
    carry_query: bool = False
    #: Segments are served as 1x1 PNG images with the MPEG-TS appended.
    cloak: bool = False
    _segments: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        folder = posixpath.dirname(self.master)
        for name, media in self.variants.items():
            seg = posixpath.join(posixpath.dirname(posixpath.join(folder, media)), self.segment)
            head, _, tail = seg.partition("{seq}")
            self._segments[name] = re.compile(f"{re.escape(head)}([0-9]{{1,12}}){re.escape(tail)}")

    def media_path(self, rendition: str) -> str:
        return posixpath.join(posixpath.dirname(self.master), self.variants[rendition])

    def find(self, path: str) -> tuple[str, str | None, int | None] | None:
        """What ``path`` is: ``("master", None, None)``, ``("media", rendition, None)``,
        ``("segment", rendition, seq)``, or ``None``."""
        if path == self.master:
            return "master", None, None
        for name in self.variants:
            if path == self.media_path(name):
                return "media", name, None
            found = self._segments[name].fullmatch(path)
            if found:
                return "segment", name, int(found[1])
        return None


def playlist_type(path: str) -> str:
    """The Content-Type such a CDN sends for a playlist named like ``path``."""
    name = posixpath.basename(path)
    if name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    if "." not in name:
        return X_HLS
    return HLS  # .m3u8, and mono.css: the CDN knows what it serves


def segment_type(path: str, cloak: bool) -> str:
    if cloak:
        return "image/png"
    return "video/mp2t" if path.endswith(".ts") else "application/octet-stream"


def _uri(name: str, query: str) -> str:
    return f"{name}?{query}" if query else name


def master_text(layout: Layout, renditions: list[Rendition], query: str = "") -> str:
    """The demo's master playlist with this layout's media playlist URIs."""
    names = {f"{r.name}/index.m3u8": r.name for r in renditions}
    carried = query if layout.carry_query else ""
    lines = [_uri(layout.variants[names[line]], carried) if line in names else line
             for line in live.master_playlist(renditions).splitlines()]
    return "\n".join(lines) + "\n"


def media_text(layout: Layout, rendition: Rendition, now: datetime, query: str = "") -> str:
    """The demo's live media playlist with this layout's segment URIs."""
    lines = []
    carried = query if layout.carry_query else ""
    for line in live.media_playlist(rendition, now).splitlines():
        if line and not line.startswith("#"):
            seq = int(line.partition(".")[0])
            lines.append(_uri(layout.segment.format(seq=seq), carried))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def vod_text(rendition: Rendition, count: int, segment: str) -> str:
    """A short VOD playlist (an ad): ``count`` segments from the start of the loop, ended."""
    target = int(rendition.segment_seconds + 0.999)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for seq in range(count):
        lines += [f"#EXTINF:{rendition.segment_seconds:.3f},", segment.format(seq=seq)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segment_bytes(rendition: Rendition, seq: int, now: datetime, cloak: bool) -> bytes | None:
    """The bytes of segment ``seq`` (behind a PNG when cloaked), or ``None`` if not published."""
    path = live.segment_file(rendition, seq, now)
    if path is None:
        return None
    data = path.read_bytes()
    return PNG_1X1 + data if cloak else data
