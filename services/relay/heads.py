"""What the relay's answers carry besides their body, in one place for both of its paths (the
Litestar routes and the edge's cache hits), so the two cannot drift apart: the headers of a
playlist and of a segment, the Content-Type as Litestar spells it, and the bytes-out counter.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

SECURITY_HEADERS: Final = {"X-Content-Type-Options": "nosniff"}
#: A playlist changes with every refresh of its upstream.
PLAYLIST_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
#: A segment never changes once fetched.
SEGMENT_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=60",
                          "Accept-Ranges": "bytes"}
BYTES_OUT = Counter("slipstream_relay_bytes_out_total", "Bytes sent to viewers", ["stream"])


def content_type(media_type: str) -> str:
    """The Content-Type header Litestar sends for ``media_type`` (text gets a charset)."""
    return f"{media_type}; charset=utf-8" if media_type.startswith("text/") else media_type


def encoded(media_type: str, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """An ASGI header list: ``headers`` and the Content-Type of ``media_type`` (no length)."""
    return [*((k.lower().encode(), v.encode()) for k, v in headers.items()),
            (b"content-type", content_type(media_type).encode())]
