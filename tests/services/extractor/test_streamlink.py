"""The streamlink extractor (streamlink as a library) on the demo's playlist URL."""

from __future__ import annotations

import pytest

from services.extractor.extractors.streamlink import StreamlinkExtractor
from services.extractor.registry import Context, ExtractionError, chain


async def test_streamlink_confirms_the_multivariant_playlist(ctx: Context, demo: str) -> None:
    """Given the master playlist, streamlink returns it (as the multivariant URL)."""
    found = (await StreamlinkExtractor().extract(f"{demo}/live/master.m3u8", ctx))[0]
    assert found.url == f"{demo}/live/master.m3u8"


async def test_streamlink_refuses_what_is_not_hls(ctx: Context, demo: str) -> None:
    """A URL that does not serve a playlist is an extraction error, not a crash."""
    with pytest.raises(ExtractionError):
        await StreamlinkExtractor().extract(f"{demo}/live/none.m3u8", ctx)


def test_streamlink_is_in_the_chain_only_for_playlist_urls() -> None:
    """auto tries streamlink for hls:// and .m3u8 URLs, not for HTML pages."""
    assert [e.name for e in chain("auto", "https://x.test/page")] == ["http", "ytdlp", "browser"]
    assert [e.name for e in chain("auto", "https://x.test/a.m3u8?t=1")] == [
        "http", "ytdlp", "streamlink", "browser"]
    assert [e.name for e in chain("browser", "https://x.test/page")] == ["browser"]
    with pytest.raises(KeyError):
        chain("nope", "https://x.test/")
