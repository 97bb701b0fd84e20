"""Which status an upstream failure becomes: 504 when a time cap fired (the upstream is slow),
502 for anything else (the upstream answered wrong, or was refused). Decided by the error's
type, never by the words of its message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.relay.upstream import Upstream, UpstreamError
from shared.egress import EgressPolicy

ORIGIN = "http://origin.test"


async def _slow(_: httpx.Request) -> httpx.Response:
    await asyncio.sleep(5)
    return httpx.Response(200, stream=httpx.ByteStream(b"#EXTM3U\n"))


def _read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def _html(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, stream=httpx.ByteStream(b"<!doctype html><p>no answer within</p>"))


def _reset(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("no answer within the connection: reset by peer", request=request)


@pytest.fixture
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    handler = request.param
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        up = Upstream(client, EgressPolicy(), timeout=0.3)
        yield up
        await up.close()


async def _playlist_status(up: Upstream, url: str = f"{ORIGIN}/index.m3u8") -> int:
    with pytest.raises(UpstreamError) as caught:
        await up.playlist(url, {}, {}, ttl=0)
    return caught.value.status


async def _segment_status(up: Upstream, url: str = f"{ORIGIN}/seg.ts") -> int:
    with pytest.raises(UpstreamError) as caught:
        await up.segment(url, {}, {}).complete()
    return caught.value.status


@pytest.mark.parametrize(("upstream", "status"), [
    (_slow, 504), (_read_timeout, 504), (_html, 502), (_reset, 502)], indirect=["upstream"])
async def test_a_playlist_failure_is_a_504_only_when_a_time_cap_fired(upstream: Upstream,
                                                                      status: int) -> None:
    assert await _playlist_status(upstream) == status


@pytest.mark.parametrize(("upstream", "status"), [
    (_slow, 504), (_read_timeout, 504), (_reset, 502)], indirect=["upstream"])
async def test_a_segment_failure_is_a_504_only_when_a_time_cap_fired(upstream: Upstream,
                                                                     status: int) -> None:
    assert await _segment_status(upstream) == status


@pytest.mark.parametrize("upstream", [_html], indirect=True)
async def test_a_refusal_that_mentions_an_answer_within_is_still_a_502(upstream: Upstream) -> None:
    """The egress policy quotes the URL it refuses: words in it say nothing about time."""
    assert await _playlist_status(upstream, "http:///no/answer/within.m3u8") == 502
