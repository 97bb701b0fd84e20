"""Which status an upstream failure becomes: 504 when a time cap fired (the upstream is slow),
502 for anything else (the upstream answered wrong, or was refused). Decided by the error's
type, never by the words of its message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

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


#: Segment origins on loopback (segments stream through aiohttp, which no mock transport
#: reaches): what each does with a request.
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 100000\r\n\r\n"


async def _silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)  # never answers
    writer.close()


async def _stalls(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"G" * 1000)  # answers, then stops sending
    await writer.drain()
    await asyncio.sleep(5)
    writer.close()


async def _resets(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"G" * 1000)
    await writer.drain()
    writer.transport.abort()  # reset mid-body


async def _refuses(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(("serve", "status", "upstream_status"), [
    (_silent, 504, None), (_stalls, 504, None), (_resets, 502, None), (_refuses, 502, 403)])
async def test_a_segment_failure_is_a_504_only_when_a_time_cap_fired(
        serve: Callable[..., Awaitable[None]], status: int, upstream_status: int | None) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient() as client:
        up = Upstream(client, EgressPolicy.from_strings([f"127.0.0.1:{port}"]), timeout=0.3)
        try:
            with pytest.raises(UpstreamError) as caught:
                await up.segment(f"http://127.0.0.1:{port}/seg.ts", {}, {}).complete()
        finally:
            await up.close()
    assert (caught.value.status, caught.value.upstream_status) == (status, upstream_status)


async def test_a_segment_from_an_address_the_policy_refuses_is_a_502_and_never_fetched() -> None:
    """aiohttp connects to an address host without a resolver: the policy still refuses it."""
    asked: list[bool] = []

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(True)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient() as client:
        up = Upstream(client, EgressPolicy(), timeout=0.3)
        try:
            for host in ("127.0.0.1", "localhost"):
                with pytest.raises(UpstreamError) as caught:
                    await up.segment(f"http://{host}:{port}/seg.ts", {}, {}).complete()
                assert caught.value.status == 502
                assert "not a public address" in caught.value.reason
        finally:
            await up.close()
    assert asked == []


@pytest.mark.parametrize("upstream", [_html], indirect=True)
async def test_a_refusal_that_mentions_an_answer_within_is_still_a_502(upstream: Upstream) -> None:
    """The egress policy quotes the URL it refuses: words in it say nothing about time."""
    assert await _playlist_status(upstream, "http:///no/answer/within.m3u8") == 502
