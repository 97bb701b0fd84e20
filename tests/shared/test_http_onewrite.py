"""Every service's HTTP server sends a response's head with its first body part, in one write.

uvicorn's own protocol, driven byte by byte, over a transport that records each write (what
leaves in one ``writelines`` is one ``writev`` on the socket); then a real server on loopback
for the answers whose head must still leave on its own (HEAD, a body that never comes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from litestar import Litestar, MediaType, get, head
from litestar.response import Stream
from uvicorn.server import ServerState

from shared.http import OneWriteHttp, server


class Recorder:
    """The transport side of a connection: each call that would reach the socket, in order."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append([bytes(data)])

    def writelines(self, parts: Any) -> None:
        self.calls.append([bytes(p) for p in parts])

    def get_extra_info(self, name: str) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@get("/small", media_type=MediaType.TEXT, sync_to_thread=False)
def small() -> str:
    return "#EXTM3U\n"


@get("/parts", sync_to_thread=False)
def parts() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one", b"two", b"three"):
            yield part
    return Stream(chunks(), media_type=MediaType.TEXT)


APP = Litestar([small, parts], openapi_config=None, logging_config=None)


async def exchange(request: bytes) -> list[list[bytes]]:
    config = uvicorn.Config(APP, http=OneWriteHttp, log_config=None, lifespan="off")
    config.load()
    recorder = Recorder()
    protocol = OneWriteHttp(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(recorder)  # type: ignore[arg-type]
    protocol.data_received(request)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if (protocol.cycle is None or protocol.cycle.response_complete) and not protocol.pipeline:
            break
    protocol.connection_lost(None)
    return recorder.calls


async def test_a_small_answer_leaves_in_one_write() -> None:
    calls = await exchange(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(calls) == 1
    head_part, body = calls[0]
    assert head_part.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head_part.endswith(b"\r\n\r\n")
    assert body == b"#EXTM3U\n"


async def test_a_streamed_answer_sends_its_head_with_the_first_part_only() -> None:
    calls = await exchange(b"GET /parts HTTP/1.1\r\nHost: x\r\n\r\n")
    assert calls[0][0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in calls[0][0]
    assert calls[0][1] == b"3\r\none\r\n"
    assert all(len(c) == 1 for c in calls[1:])  # the other parts as they come
    assert b"".join(p for c in calls[1:] for p in c) == b"3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"


async def test_pipelined_requests_are_answered_whole_and_in_order() -> None:
    calls = await exchange(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /parts HTTP/1.1\r\nHost: x\r\n\r\n")
    sent = b"".join(p for c in calls for p in c)
    first = sent.index(b"#EXTM3U\n")
    assert sent.index(b"HTTP/1.1 200 OK", first) > first  # the second head after the first body
    assert sent.endswith(b"0\r\n\r\n")


@head("/small", media_type=MediaType.TEXT)
async def small_head() -> None:
    return None


@pytest.fixture
async def live_server() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    srv = server(Litestar([small, small_head], openapi_config=None, logging_config=None),
                 log_level="warning", graceful=1)
    task = asyncio.create_task(srv.serve([sock]))
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        await task


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    got = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return got


async def test_a_head_answer_still_sends_its_head(live_server: int) -> None:
    """A HEAD answer has no body part to carry the head: the head leaves alone."""
    got = await request(live_server, b"HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"\r\n\r\n")
    assert b"#EXTM3U" not in got
