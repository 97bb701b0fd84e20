"""The ``ytdlp`` extractor: yt-dlp as a library (never a subprocess), in a worker thread.

yt-dlp opens its own connections and follows redirects itself, so it is pointed at the egress
proxy: every hop passes the policy. It never downloads (``skip_download``), never calls an
external downloader, and keeps only what the stream needs (Referer, Origin, its cookies).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from http.cookiejar import Cookie
from typing import Any, Final
from urllib.parse import urlsplit

from services.extractor.registry import Context, ExtractionError, Found

KEEP_HEADERS: Final = ("User-Agent", "Referer", "Origin")


class _Quiet:
    """yt-dlp logger that drops everything (errors come back as exceptions)."""

    def debug(self, msg: str) -> None:
        del msg

    warning = info = error = debug


def _cookie(name: str, value: str, domain: str) -> Cookie:
    return Cookie(0, name, value, None, False, domain, True, False, "/", True, False, None, False,
                  None, None, {})


def _pick(info: Mapping[str, Any]) -> Mapping[str, Any]:
    formats: list[Mapping[str, Any]] = [f for f in info.get("formats") or [info]
               if str(f.get("protocol", "")).startswith("m3u8") or ".m3u8" in str(f.get("url", ""))]
    if not formats:
        raise ExtractionError("yt-dlp found media but no HLS playlist")
    return formats[-1]  # yt-dlp sorts formats worst to best


def _extract(url: str, headers: dict[str, str], cookies: dict[str, str], proxy: str,
             timeout: float) -> Found:
    import yt_dlp  # noqa: PLC0415 - heavy, imported on first use

    opts = {"quiet": True, "no_warnings": True, "skip_download": True, "noplaylist": True,
            "socket_timeout": timeout, "proxy": proxy, "http_headers": headers,
            "logger": _Quiet(), "extractor_retries": 0, "retries": 0, "cachedir": False,
            "noprogress": True, "check_formats": False, "color": "no_color"}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            host = urlsplit(url).hostname or ""
            for name, value in cookies.items():
                ydl.cookiejar.set_cookie(_cookie(name, value, host))
            info = ydl.extract_info(url, download=False)
            if not isinstance(info, dict):
                raise ExtractionError("yt-dlp returned nothing")
            fmt = _pick(info)
            playlist = str(fmt.get("manifest_url") or fmt["url"])
            jar = {c.name: c.value or "" for c in ydl.cookiejar
                   if (urlsplit(playlist).hostname or "").endswith(c.domain.lstrip("."))}
    except yt_dlp.utils.YoutubeDLError as exc:
        text = str(exc).removeprefix("ERROR: ")
        raise ExtractionError(text[:300], refused="403" in text or "Forbidden" in text) from exc
    sent = fmt.get("http_headers") or {}
    kept = {k: str(v) for k, v in sent.items() if k in KEEP_HEADERS}
    return Found(url=playlist, headers=kept, cookies={**cookies, **jar},
                 title=str(info.get("title") or ""))


class YtDlpExtractor:
    """yt-dlp's generic and site extractors."""

    name = "ytdlp"

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        if not ctx.proxy:
            raise ExtractionError("the ytdlp extractor needs the egress proxy")
        # yt-dlp's own User-Agent is never presented: the browser's (or the source's) is.
        headers = {"User-Agent": ctx.user_agent, **ctx.headers}
        return [await asyncio.to_thread(_extract, url, headers, dict(ctx.cookies),
                                        ctx.proxy, min(ctx.deadline, 15.0))]
