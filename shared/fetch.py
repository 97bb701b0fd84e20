"""Bounded fetches for the relay and the extractor: redirects followed by hand, credentials
dropped across origins, a size cap on every body and a wall-clock deadline on the whole fetch.

httpx forwards custom headers (Referer, tokens, cookies) to whatever origin a redirect names;
here a hop to another origin keeps only harmless headers. Every hop also passes the egress
policy, because the client's network backend checks each connection.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from shared.egress import EgressDeniedError, EgressPolicy

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: Headers that may follow a redirect to another origin (nothing that identifies the viewer).
SAFE_ACROSS_ORIGINS: Final = frozenset({"user-agent", "accept", "accept-language",
                                        "accept-encoding", "range"})
#: The encodings decoded here, by hand and in bounded steps (httpx would inflate a whole chunk
#: at once: 64 KB of gzip bomb becomes 64 MB before any size cap can look at it).
ACCEPT_ENCODING: Final = "gzip, deflate"
#: Most bytes one inflate step may produce.
INFLATE_STEP: Final = 64 * 1024


class FetchError(Exception):
    """A fetch failed; ``reason`` is short and safe to log (no URL query, no credential)."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TooLargeError(FetchError):
    """The body exceeded its size cap."""


class FetchTimeoutError(FetchError):
    """A time cap fired: the fetch's deadline, or the client's own connect/read timeout."""


@dataclass(frozen=True)
class Fetched:
    """A completed fetch: where it ended up, how, and the (capped) body."""

    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float
    #: Cookies the origin set along the way (the demo's embedded player, for instance).
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """The (scheme, host, port) a URL is fetched from."""
    return (url.scheme, url.host, url.port)


async def fetch(client: httpx.AsyncClient, url: str | httpx.URL, *, policy: EgressPolicy,
                headers: Mapping[str, str] | None = None, cookies: Mapping[str, str] | None = None,
                max_bytes: int = 4 * 1024 * 1024, deadline: float = 10.0,
                max_redirects: int = 5) -> Fetched:
    """GET ``url`` following at most ``max_redirects`` redirects, within ``deadline`` seconds.

    Raises :class:`FetchError` (or :class:`TooLargeError`, :class:`FetchTimeoutError`) for
    anything but a 2xx body within the caps; :class:`EgressDeniedError` is reported as a
    FetchError naming the policy.
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(client, policy.check_url(url), policy=policy,
                                headers=dict(headers or {}), cookies=dict(cookies or {}),
                                max_bytes=max_bytes, max_redirects=max_redirects, started=started)
    except TimeoutError as exc:
        raise FetchTimeoutError(f"no complete answer within {deadline:.1f} s") from exc
    except EgressDeniedError as exc:
        raise FetchError(f"refused by the egress policy: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeoutError(f"{type(exc).__name__}: {exc}" if str(exc)
                                else type(exc).__name__) from exc
    except httpx.TransportError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc


def hop_headers(url: httpx.URL, first: tuple[str, str, int | None], headers: Mapping[str, str],
                cookies: Mapping[str, str], accept_encoding: str) -> dict[str, str]:
    """The headers of one hop of a fetch that began at origin ``first``: all of them (and the
    cookies) on that origin, only :data:`SAFE_ACROSS_ORIGINS` on another; the Accept-Encoding
    always ours (only what :func:`decoded` can undo)."""
    send = dict(headers)
    if origin(url) != first:
        send = {k: v for k, v in headers.items() if k.lower() in SAFE_ACROSS_ORIGINS}
    elif cookies:
        send["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    send = {k: v for k, v in send.items() if k.lower() != "accept-encoding"}
    send["Accept-Encoding"] = accept_encoding
    return send


async def open_response(client: httpx.AsyncClient, url: httpx.URL, *, policy: EgressPolicy,
                        headers: dict[str, str], cookies: dict[str, str],
                        max_redirects: int = 5, accept_encoding: str = ACCEPT_ENCODING,
                        ) -> tuple[httpx.Response, dict[str, str]]:
    """Follow redirects to a 2xx response and return it open (streaming; the caller closes it
    and reads it through :func:`decoded`), with the cookies set on the way. Raises
    :class:`FetchError` on any other status."""
    first = origin(url)
    jar: dict[str, str] = {}
    for _ in range(max_redirects + 1):
        send = hop_headers(url, first, headers, {**cookies, **jar}, accept_encoding)
        request = client.build_request("GET", url, headers=send)
        response = await client.send(request, stream=True)
        jar.update(response.cookies.items())
        if response.status_code in REDIRECTS and "location" in response.headers:
            await response.aclose()
            url = policy.check_url(url.join(response.headers["location"]))
            continue
        if not 200 <= response.status_code < 300:
            await response.aclose()
            raise FetchError(f"HTTP {response.status_code}", status=response.status_code)
        return response, jar
    raise FetchError(f"more than {max_redirects} redirects")


async def _fetch(client: httpx.AsyncClient, url: httpx.URL, *, policy: EgressPolicy,
                 headers: dict[str, str], cookies: dict[str, str], max_bytes: int,
                 max_redirects: int, started: float) -> Fetched:
    response, jar = await open_response(client, url, policy=policy, headers=headers,
                                        cookies=cookies, max_redirects=max_redirects)
    try:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise TooLargeError(f"body of {declared} bytes exceeds {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in decoded(response):
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(f"body exceeds {max_bytes} bytes")
            chunks.append(chunk)
        return Fetched(url=response.url, status=response.status_code, headers=response.headers,
                       body=b"".join(chunks), elapsed=time.monotonic() - started, cookies=jar)
    finally:
        await response.aclose()


async def decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body of ``response``, decoded from its Content-Encoding in steps of at most
    :data:`INFLATE_STEP` bytes, so a size cap sees every step (no decompression bomb).

    gzip bodies of several members are decoded whole; a deflate body may come with or without
    its zlib header (servers do both); a compressed body cut short is a :class:`FetchError`,
    never a silently shorter body."""
    async for chunk in decode_stream(response.headers.get("content-encoding", ""),
                                     response.aiter_raw()):
        yield chunk


async def decode_stream(content_encoding: str, raw: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """:func:`decoded` for any body: ``raw`` as it came, and its Content-Encoding header."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        async for chunk in raw:
            yield chunk
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"unsupported content encoding {encoding[:40]!r}")
    async for chunk in _inflated(raw, encoding):
        yield chunk


async def _inflated(raw: AsyncIterator[bytes], encoding: str) -> AsyncIterator[bytes]:
    gzip = encoding != "deflate"
    inflater: Any = None
    complete = False  # the last gzip member, or the deflate stream, has ended
    held = b""  # the first byte of a deflate body, until the second says which kind it is
    capped = False  # the last step filled INFLATE_STEP: zlib may hold more output, input or not
    try:
        async for chunk in raw:
            data, held = held + chunk, b""
            while data or capped:
                if inflater is None:
                    if complete and not data.strip(b"\0"):
                        return  # zero padding after the last member: the end
                    if not gzip and len(data) < 2:
                        held = data
                        break
                    inflater, complete = zlib.decompressobj(_wbits(gzip, data)), False
                out = inflater.decompress(data, INFLATE_STEP)
                data = inflater.unconsumed_tail
                capped = len(out) == INFLATE_STEP and not inflater.eof
                if out:
                    yield out
                if inflater.eof:
                    if not gzip:
                        return  # whatever follows a deflate stream is not part of the body
                    data, inflater, complete = inflater.unused_data, None, True
        if not complete:
            raise FetchError(f"{encoding} body cut short")
    except zlib.error as exc:
        raise FetchError(f"body is not valid {encoding}: {exc}") from exc


def _wbits(gzip: bool, start: bytes) -> int:
    """zlib's window bits for a stream starting with ``start``: gzip, zlib-wrapped deflate
    (the standard's "deflate"), or raw deflate (what many servers send instead)."""
    if gzip:
        return 16 + zlib.MAX_WBITS
    if len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0:
        return zlib.MAX_WBITS
    return -zlib.MAX_WBITS
