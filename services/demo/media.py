"""The media the demo ships (generated once by ``make_media.sh``, committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from services.demo.live import Rendition, load_rendition

MEDIA_DIR: Final = Path(__file__).parent / "media"


def renditions(media_dir: Path = MEDIA_DIR) -> list[Rendition]:
    """The demo renditions, highest first."""
    return [
        load_rendition(media_dir / "360p", width=640, height=360, codecs="avc1.4d401e,mp4a.40.2"),
        load_rendition(media_dir / "180p", width=320, height=180, codecs="avc1.4d400c,mp4a.40.2"),
    ]
