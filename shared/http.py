"""Serving ASGI apps: bind the socket ourselves (clear "port in use" errors) and let the caller
own shutdown (uvicorn's own signal capture is switched off; the service runner handles signals).
uvicorn writes a response's head and its body in two socket writes; here they go in one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class StartupError(RuntimeError):
    """A service cannot start for a reason the operator must fix (printed without traceback)."""


USER_TIMEOUT_MS: Final = 60_000


def bind(host: str, port: int, setting: str, *, send_buffer: int | None = None) -> socket.socket:
    """Bind a listening TCP socket, or raise :class:`StartupError` naming the setting to change.

    ``send_buffer`` fixes the kernel send buffer of every accepted connection (no autotuning):
    a peer that stops reading then blocks our writes after that many bytes instead of megabytes,
    which is what lets a feed notice a stalled client quickly and bounds its memory.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"{setting}: {host}:{port} is already in use; free it or set "
                               f"another port") from exc
        raise StartupError(f"{setting}: cannot listen on {host}:{port} ({exc.strerror})") from exc
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        # Accepted connections inherit it: a peer that stops reading (a zero window) or
        # vanishes is dropped by the kernel after this long instead of holding buffers forever.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Gather:
    """Stands in for the transport while uvicorn writes a response head: keeps it."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class _Prefixed:
    """Stands in for the transport while uvicorn writes a response's first body part: writes
    the kept head with it, in one call (``writelines``: one ``writev`` on uvloop, no copy)."""

    __slots__ = ("head", "real")

    def __init__(self, real: Any, head: bytes) -> None:
        self.real = real
        self.head: bytes | None = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        if head is None:
            self.real.write(data)
        else:
            self.real.writelines((head, data))

    def flush(self) -> None:
        if self.head is not None:
            head, self.head = self.head, None
            self.real.write(head)

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, but the response head goes out with the first body part in one
    write instead of two (a cached playlist is one small body: half the syscalls per answer)."""

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            real, gather = self.transport, _Gather()
            self.transport = gather  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = real
            self._head = b"".join(gather.parts)
            return
        head, self._head = self._head, None
        if head is None:
            await super().send(message)
            return
        real, prefixed = self.transport, _Prefixed(self.transport, head)
        self.transport = prefixed  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = real
            prefixed.flush()  # a HEAD answer, or an empty first part: the head alone


class OneWriteHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol answering each response's head and first body part in one
    socket write (:class:`_OneWriteCycle`)."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = _OneWriteCycle  # before its task first runs


class Server(uvicorn.Server):
    """uvicorn without its signal handlers: set ``should_exit`` to stop it gracefully."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(app: Any, *, log_level: str = "info", graceful: int = 10,
           ws_ping: float = 20.0) -> Server:
    """A uvicorn server for ``app`` that finishes in-flight requests for up to ``graceful`` s.
    WebSocket peers are pinged every ``ws_ping`` s and dropped when a pong takes as long. Each
    response's head leaves with its first body part, in one write (:class:`OneWriteHttp`)."""
    config = uvicorn.Config(app, log_config=None, log_level=log_level, lifespan="on",
                            http=OneWriteHttp,
                            timeout_graceful_shutdown=int(graceful), proxy_headers=False,
                            server_header=False, ws_max_size=64 * 1024,
                            ws_ping_interval=ws_ping, ws_ping_timeout=ws_ping,
                            # WebSocket messages here are small JSON: compression would cost a
                            # zlib state per connection and invite compression bombs.
                            ws_per_message_deflate=False)
    # uvicorn sets its loggers' levels from log_level; per-request access lines only when debugging.
    logging.getLogger("uvicorn.access").setLevel("DEBUG" if log_level == "debug" else "WARNING")
    return Server(config)
