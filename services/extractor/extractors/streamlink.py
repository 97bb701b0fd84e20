"""The ``streamlink`` extractor: streamlink as a library, for ``hls://`` and playlist URLs.

It checks that a playlist URL really is HLS and finds its multivariant playlist; its HTTP goes
through the egress proxy like yt-dlp's.
"""

from __future__ import annotations

import asyncio

from services.extractor.registry import Context, ExtractionError, Found


def _extract(url: str, headers: dict[str, str], cookies: dict[str, str], proxy: str,
             timeout: float) -> Found:
    from streamlink.exceptions import StreamlinkError  # noqa: PLC0415
    from streamlink.session.session import Streamlink  # noqa: PLC0415 - imported on first use

    session = Streamlink({"http-proxy": proxy, "http-timeout": timeout,
                          "http-headers": headers, "http-cookies": cookies,
                          "stream-timeout": timeout})
    try:
        streams = session.streams(url)
    except StreamlinkError as exc:
        raise ExtractionError(str(exc)[:300], refused="403" in str(exc)) from exc
    if not streams:
        raise ExtractionError("streamlink found no stream")
    best = streams.get("best") or next(iter(streams.values()))
    multivariant = getattr(best, "multivariant", None)
    playlist = getattr(multivariant, "uri", None) or getattr(best, "url", None)
    if not playlist:
        raise ExtractionError("streamlink's stream has no playlist URL")
    return Found(url=str(playlist),
                 headers={k: v for k, v in headers.items() if k in ("User-Agent", "Referer")},
                 cookies=dict(cookies), via="streamlink")


class StreamlinkExtractor:
    """streamlink's HLS plugin."""

    name = "streamlink"

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        if not ctx.proxy:
            raise ExtractionError("the streamlink extractor needs the egress proxy")
        # streamlink's own User-Agent is never presented: the browser's (or the source's) is.
        headers = {"User-Agent": ctx.user_agent, **ctx.headers}
        return [await asyncio.to_thread(_extract, url, headers, dict(ctx.cookies), ctx.proxy,
                                        min(ctx.deadline, 15.0))]
