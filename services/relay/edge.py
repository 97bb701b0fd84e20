"""The relay's edge: a thin ASGI app in front of its Litestar app that answers the requests a
CDN edge answers from memory (a GET of a signed playlist or segment URL that is a cache hit)
without the framework, and passes everything else to Litestar unchanged.

A hit is what :meth:`Relay.master_now` and :meth:`Relay.resource_now` find: a signed, unexpired
link of a known stream, and a playlist rewritten from a fresh cached upstream answer or a whole
cached body. Anything else (a miss, an error, a Range or HEAD request, LL-HLS blocking
parameters, a redirect, a preflight) is Litestar's, so errors and the rarer answers have one
implementation. The edge's answers are the Litestar path's, header for header: both build
them from :mod:`services.relay.heads`, CORS headers come from Litestar's own CORS middleware,
and the same metrics are counted. Response heads are built once per cached page or body; a
body is sent as the cached ``bytes`` object itself (no copy), and a playlist is one join of the
rewritten page with the viewer's own link prefix.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.types import Receive, Send
from prometheus_client import Counter

from services.relay.heads import BYTES_OUT, PLAYLIST_HEADERS, SEGMENT_HEADERS, encoded
from services.relay.relay import Relay, Served

#: Query parameters that make a playlist request one viewer's (LL-HLS blocking reloads).
_BLOCKING: Final = b"_HLS_"
_MASTER: Final = "master.m3u8"
#: How much of a cached body is handed to the server at a time.
SLICE: Final = 256 * 1024
HITS = Counter("slipstream_relay_edge_hits_total",
               "Requests the relay's edge answered from the cache, without the framework", ["kind"])
_PLAYLIST_HITS: Final = HITS.labels("playlist")
_SEGMENT_HITS: Final = HITS.labels("segment")
#: An ASGI scope as servers give it (Litestar's TypedDicts do not narrow on ``type``).
Scope = dict[str, Any]


class Edge:
    """The relay's ASGI app: cache hits here, everything else to ``app``."""

    def __init__(self, app: Litestar, relay: Relay, cors: CORSConfig) -> None:
        self.app = app
        self.relay = relay
        self.state = app.state
        # Only its per-response header logic is used, for requests that carry an Origin.
        self._cors = CORSMiddleware(app, cors)
        self._bytes_out: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            hit = self._hit(scope)
            if hit is not None:
                await self._answer(scope, send, *hit)
                return
        await self.app(scope, receive, send)  # type: ignore[arg-type]

    def _hit(self, scope: Scope) -> tuple[Served, str, str] | None:
        """The cached answer to this request, its stream and link prefix; or ``None``."""
        path: str = scope["path"]
        if not path.startswith("/s/") or _BLOCKING in scope["query_string"]:
            return None
        parts = path.split("/")  # "", "s", session, stream, token, then master or kind/name
        if len(parts) == 6 and parts[5] == _MASTER:
            kind = name = ""
        elif len(parts) == 7 and parts[5] and parts[6]:
            kind, name = parts[5], parts[6]
        else:
            return None
        for header, _ in scope["headers"]:
            if header == b"range":
                return None
        target = self.relay.authorise_now(parts[2], parts[3], parts[4])
        if target is None:
            return None
        served = self.relay.master_now(target) if not kind else \
            self.relay.resource_now(target, kind, name)
        if served is None:
            return None
        return served, target.key, target.prefix

    async def _answer(self, scope: Scope, send: Send, served: Served, stream: str,
                      prefix: str) -> None:
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        if origin is not None:
            has_cookie = any(k == b"cookie" for k, _ in scope["headers"])
            send = self._cors.send_wrapper(send, origin.decode("latin-1"), has_cookie)
        if served.page is not None:
            page = served.page
            common: Any = page.heads.get("edge")
            if common is None:
                common = page.heads["edge"] = encoded(served.content_type, PLAYLIST_HEADERS)
            data = page.render(prefix)
            _PLAYLIST_HITS.inc()
            self._counter(stream).inc(len(data))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*common, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data, "more_body": False})
            return
        body = served.body
        if body is None:  # pragma: no cover - resource_now answers a page or a whole body
            raise TypeError("a cache hit without a body")
        head: Any = body.heads.get(served.content_type)
        if head is None:
            head = body.heads[served.content_type] = [
                *encoded(served.content_type, SEGMENT_HEADERS),
                (b"content-length", str(body.size).encode())]
        _SEGMENT_HITS.inc()
        # The CORS wrapper edits the header list it is sent: it gets a copy of the kept one.
        await send({"type": "http.response.start", "status": 200,
                    "headers": head if origin is None else list(head)})
        self._counter(stream).inc(body.size)
        # A cached body is one bytes object (sealed); it goes out in slices that are views of
        # it, not copies: one huge write makes the transport hold it all at once.
        size = body.size
        view = memoryview(body.chunks[0]) if len(body.chunks) == 1 else \
            memoryview(b"".join(body.chunks))
        for start in range(0, max(size, 1), SLICE):
            # uvicorn writes any buffer; ASGI's type says bytes, which would be a copy
            message: Any = {"type": "http.response.body", "body": view[start:start + SLICE],
                            "more_body": start + SLICE < size}
            await send(message)

    def _counter(self, stream: str) -> Any:
        """The bytes-out counter of ``stream``, labelled once."""
        counter = self._bytes_out.get(stream)
        if counter is None:
            if len(self._bytes_out) > 4096:
                self._bytes_out.clear()
            counter = self._bytes_out[stream] = BYTES_OUT.labels(stream)
        return counter
