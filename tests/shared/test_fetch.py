"""Content-Encoding decoding in bounded steps: what a size cap needs to stop a decompression
bomb before it is inflated, and a faithful decoder for every honest body."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.egress import EgressPolicy
from shared.fetch import INFLATE_STEP, FetchError, FetchTimeoutError, decoded, fetch


class Chunked(httpx.AsyncByteStream):
    """A body that arrives in pieces of ``size`` bytes, as from a network."""

    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start:start + self.size]


def response(body: bytes, encoding: str | None, size: int = 1 << 30) -> httpx.Response:
    headers = {"content-encoding": encoding} if encoding else {}
    return httpx.Response(200, headers=headers, stream=Chunked(body, size))


async def chunks(body: bytes, encoding: str | None, size: int = 1 << 30) -> list[bytes]:
    return [c async for c in decoded(response(body, encoding, size))]


def raw_deflate(body: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(body) + packer.flush()


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300_000) | st.builds(lambda n: b"\0" * n, st.integers(0, 2_000_000)),
       st.sampled_from(["gzip", "x-gzip", "deflate", "raw-deflate", "identity", None]),
       st.integers(1, 3) | st.integers(4, 100_000))  # tiny pieces: header split up
def test_every_body_decodes_faithfully_in_bounded_steps(body: bytes, encoding: str | None,
                                                        size: int) -> None:
    """Whatever the body and however the network cuts it up."""
    encoders: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress, "x-gzip": gzip.compress, "deflate": zlib.compress,
        "raw-deflate": raw_deflate}
    encoder = encoders.get(encoding or "")
    encoded = body if encoder is None else encoder(body)
    if encoding == "raw-deflate":
        encoding = "deflate"
    assume(len(encoded) // size < 20_000)  # byte by byte only for short bodies
    got = asyncio.run(chunks(encoded, encoding, size))
    assert b"".join(got) == body
    if encoding not in ("identity", None):
        assert all(len(c) <= INFLATE_STEP for c in got)


def test_a_bomb_is_inflated_one_step_at_a_time() -> None:
    """64 MB of zeros in 64 KB of gzip: the first step is 64 KB, not 64 MB."""
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))

    async def first() -> bytes:
        async for chunk in decoded(response(bomb, "gzip")):
            return chunk
        return b""

    assert len(asyncio.run(first())) == INFLATE_STEP


@pytest.mark.parametrize(("encoded", "encoding", "body"), [
    (gzip.compress(b"#EXTM3U\n", mtime=0) + gzip.compress(b"#EXT-X-ENDLIST\n", mtime=0), "gzip",
     b"#EXTM3U\n#EXT-X-ENDLIST\n"),  # two gzip members
    (gzip.compress(b"#EXTM3U\n", mtime=0) + b"\0" * 16, "gzip", b"#EXTM3U\n"),  # zero padding
    (raw_deflate(b"#EXTM3U\n" * 1000), "deflate", b"#EXTM3U\n" * 1000),  # no zlib header
    (zlib.compress(b"#EXTM3U\n") + b"trailing", "deflate", b"#EXTM3U\n"),
])
def test_what_servers_really_send_decodes(encoded: bytes, encoding: str, body: bytes) -> None:
    assert b"".join(asyncio.run(chunks(encoded, encoding))) == body


def test_output_zlib_still_holds_when_the_input_runs_out_is_not_lost() -> None:
    """A step that fills INFLATE_STEP exactly as the input ends leaves output (and the end of
    the stream) inside zlib: it is drained, not reported as a body cut short (found by the
    property above)."""
    body = b"\0" * 436507
    assert b"".join(asyncio.run(chunks(raw_deflate(body), "deflate", 155))) == body


@pytest.mark.parametrize(("encoding", "body", "error"), [
    ("br", b"\x0b", "unsupported content encoding 'br'"),
    ("gzip, gzip", b"", "unsupported content encoding 'gzip, gzip'"),
    ("gzip", b"not gzip at all", "body is not valid gzip"),
    ("gzip", gzip.compress(b"#EXTM3U\n" * 100, mtime=0)[:-12], "gzip body cut short"),
    ("deflate", zlib.compress(b"#EXTM3U\n" * 100)[:-6], "deflate body cut short"),
    ("gzip", gzip.compress(b"#EXTM3U\n", mtime=0) + b"garbage", "body is not valid gzip"),
])
def test_what_cannot_be_decoded_is_a_fetch_error(encoding: str, body: bytes, error: str) -> None:
    with pytest.raises(FetchError, match=error):
        asyncio.run(chunks(body, encoding))


async def _slow(_: httpx.Request) -> httpx.Response:
    await asyncio.sleep(5)
    return httpx.Response(200, stream=httpx.ByteStream(b"#EXTM3U\n"))


def _read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _reset(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset", request=request)


def _fetch_error(handler: object) -> FetchError:
    async def run() -> FetchError:
        transport = httpx.MockTransport(handler)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(FetchError) as caught:
                await fetch(client, "http://origin.test/index.m3u8", policy=EgressPolicy(),
                            deadline=0.2)
            return caught.value
    return asyncio.run(run())


@pytest.mark.parametrize("handler", [_slow, _read_timeout])
def test_a_time_cap_that_fires_is_a_fetch_timeout_error(handler: object) -> None:
    """The whole-fetch deadline, or the client's own timeout: the type says so, not the words."""
    assert isinstance(_fetch_error(handler), FetchTimeoutError)


def test_other_failures_are_not_timeouts() -> None:
    assert not isinstance(_fetch_error(_reset), FetchTimeoutError)
