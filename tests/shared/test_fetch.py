"""Content-Encoding decoding in bounded steps: what a size cap needs to stop a decompression
bomb before it is inflated, and a faithful decoder for every honest body."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.fetch import INFLATE_STEP, FetchError, decoded


def response(body: bytes, encoding: str | None) -> httpx.Response:
    headers = {"content-encoding": encoding} if encoding else {}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


async def chunks(body: bytes, encoding: str | None) -> list[bytes]:
    return [c async for c in decoded(response(body, encoding))]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300_000) | st.builds(lambda n: b"\0" * n, st.integers(0, 2_000_000)),
       st.sampled_from(["gzip", "x-gzip", "deflate", "identity", None]))
def test_every_body_decodes_faithfully_in_bounded_steps(body: bytes, encoding: str | None) -> None:
    encoded = {"gzip": gzip.compress, "x-gzip": gzip.compress,
               "deflate": zlib.compress}.get(encoding or "", lambda b: b)(body)
    got = asyncio.run(chunks(encoded, encoding))
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


@pytest.mark.parametrize(("encoding", "body", "error"), [
    ("br", b"\x0b", "unsupported content encoding 'br'"),
    ("gzip, gzip", b"", "unsupported content encoding 'gzip, gzip'"),
    ("gzip", b"not gzip at all", "body is not valid gzip"),
])
def test_what_cannot_be_decoded_is_a_fetch_error(encoding: str, body: bytes, error: str) -> None:
    with pytest.raises(FetchError, match=error):
        asyncio.run(chunks(body, encoding))
