"""Live playlists over looping media: a sliding window whose media sequence follows the clock.

Pure functions of (media, time): every demo origin, restarted or not, serves the same sequence
at the same instant, as a real live origin would. Segment ``k`` plays file ``k % loop`` and a
discontinuity marks each wrap (timestamps restart there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

#: Media sequence 0 started at this instant; any fixed instant works.
EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW: Final = 6


@dataclass(frozen=True, slots=True)
class Rendition:
    """One rendition of the looping media: its folder and what the master playlist says of it."""

    name: str
    folder: Path
    width: int
    height: int
    codecs: str
    segments: int
    segment_seconds: float
    peak_bandwidth: int
    average_bandwidth: int


def load_rendition(folder: Path, *, width: int, height: int, codecs: str,
                   segment_seconds: float = 2.0) -> Rendition:
    """Describe a folder of ``0.ts``, ``1.ts``, ... segments, measuring their bit rates."""
    sizes: list[int] = []
    while (folder / f"{len(sizes)}.ts").exists():
        sizes.append((folder / f"{len(sizes)}.ts").stat().st_size)
    if not sizes:
        raise FileNotFoundError(f"no segments in {folder}")
    return Rendition(
        name=folder.name, folder=folder, width=width, height=height, codecs=codecs,
        segments=len(sizes), segment_seconds=segment_seconds,
        peak_bandwidth=math.ceil(max(sizes) * 8 / segment_seconds),
        average_bandwidth=math.ceil(sum(sizes) * 8 / segment_seconds / len(sizes)),
    )


def master_playlist(renditions: list[Rendition]) -> str:
    """The master playlist; variant URIs are relative (``360p/index.m3u8``)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in renditions:
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.peak_bandwidth},AVERAGE-BANDWIDTH={r.average_bandwidth},"
            f'RESOLUTION={r.width}x{r.height},CODECS="{r.codecs}",FRAME-RATE=25.000'
        )
        lines.append(f"{r.name}/index.m3u8")
    return "\n".join(lines) + "\n"


def live_edge(now: datetime, segment_seconds: float) -> int:
    """Sequence number of the newest complete segment at ``now``."""
    return math.floor((now - EPOCH).total_seconds() / segment_seconds) - 1


def media_playlist(r: Rendition, now: datetime, window: int = WINDOW, *,
                   dates: bool = True) -> str:
    """The live media playlist of one rendition at ``now``: the last ``window`` segments;
    ``dates=False`` leaves out ``EXT-X-PROGRAM-DATE-TIME`` (as many real origins do)."""
    last = live_edge(now, r.segment_seconds)
    first = max(0, last - window + 1)
    target = math.ceil(r.segment_seconds)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first // r.segments}",
    ]
    for seq in range(first, last + 1):
        if seq != first and seq % r.segments == 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if dates and (seq == first or seq % r.segments == 0):
            start = EPOCH + timedelta(seconds=seq * r.segment_seconds)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{start.isoformat(timespec='milliseconds')}")
        lines.append(f"#EXTINF:{r.segment_seconds:.3f},")
        lines.append(f"{seq}.ts")
    return "\n".join(lines) + "\n"


def segment_file(r: Rendition, seq: int, now: datetime, window: int = WINDOW) -> Path | None:
    """The file behind segment ``seq``, or ``None`` if it is not (or no longer) published."""
    last = live_edge(now, r.segment_seconds)
    # Keep serving segments a little after they leave the window: players may still ask.
    if seq < 0 or seq > last or seq < last - 3 * window:
        return None
    return r.folder / f"{seq % r.segments}.ts"
