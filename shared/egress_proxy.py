"""A local forward proxy that applies the egress policy to libraries we do not control.

yt-dlp, streamlink and Chromium open their own connections and follow redirects themselves;
pointed at this proxy (bound to 127.0.0.1 on a free port, one per process), every connection
they make, every redirect hop included, is checked against the :class:`EgressPolicy` after DNS
resolution and made to the checked address. HTTPS goes through ``CONNECT`` (the proxy only
sees host and port, which is all the policy needs); plain HTTP through absolute-form requests.
A refused request gets ``403`` and the destination never sees a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final
from urllib.parse import urlsplit

from shared import logs
from shared.egress import EgressDeniedError, EgressPolicy, UnresolvableHostError

log = logs.get(__name__)

MAX_HEAD: Final = 64 * 1024
CONNECT_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 60.0


class EgressProxy:
    """``async with EgressProxy(policy) as proxy: proxy.url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.server: asyncio.Server | None = None
        self.url = ""
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> EgressProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio runs each connection in its own task; keep them so shutdown can cancel them.
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            await self._handle(reader, writer)
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        line, _, rest = head.partition(b"\r\n")
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            await self._reply(writer, 400, "bad request line")
            return
        method, target, version = parts
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            await self._tunnel(reader, writer, host, int(port) if port.isdigit() else 443, b"")
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await self._reply(writer, 400, "only absolute http:// URLs or CONNECT")
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        # Forward as origin-form, one request per connection (keeps the proxy trivial).
        headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(
            (b"proxy-connection:", b"connection:", b"keep-alive:"))]
        request = b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *headers,
                                b"Connection: close", b"", b""])
        await self._tunnel(reader, writer, url.hostname, url.port or 80, request)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                      port: int, first: bytes) -> None:
        try:
            addresses = await self.policy.resolve(host, port)
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(addresses[0], port), CONNECT_TIMEOUT)
        except EgressDeniedError as exc:
            self.refused += 1
            # Unresolvable names are routine (Chromium's background requests on a closed
            # network); refusals of private addresses are what an operator must see.
            level = log.debug if isinstance(exc, UnresolvableHostError) else log.warning
            level("egress refused", host=host, port=port, reason=str(exc))
            await self._reply(writer, 403, f"refused by the egress policy: {exc}")
            return
        except (OSError, TimeoutError) as exc:
            await self._reply(writer, 502, f"cannot connect to {host}:{port}: {exc}")
            return
        if first:
            up_writer.write(first)
        else:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_pipe(reader, up_writer))
            tg.create_task(_pipe(up_reader, writer))

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, text: str) -> None:
        body = text.encode()
        writer.write(f"HTTP/1.1 {status} {'Forbidden' if status == 403 else 'Error'}\r\n"
                     f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        # A peer that resets or idles ends this direction; the other one ends on its own.
        with contextlib.suppress(OSError, TimeoutError):
            while chunk := await asyncio.wait_for(src.read(65536), IDLE_TIMEOUT):
                dst.write(chunk)
                await dst.drain()
    finally:
        with contextlib.suppress(OSError):
            if dst.can_write_eof():
                dst.write_eof()
        dst.close()
