"""App factory of the relay: the Litestar routes over :mod:`services.relay.relay`, the NATS link
and KV watch, the upstream client, the re-resolve requests to the extractor, CORS for the web
UI, health and metrics.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar import HttpMethod, Litestar, Request, Response, route
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Stream
from prometheus_client import Counter

from services.relay.channel import Channels, KeyRing, Outbox
from services.relay.channel_routes import channel_routes
from services.relay.edge import Edge
from services.relay.heads import BYTES_OUT, PLAYLIST_HEADERS, SECURITY_HEADERS, SEGMENT_HEADERS
from services.relay.relay import BLOCKING_PARAMS, Relay, RelayError, Served, Target
from services.relay.reresolve import Reresolver
from services.relay.upstream import Upstream
from shared import logs, topology
from shared.cache import SharedState
from shared.egress import client, policy_for
from shared.health import ROUTES
from shared.kvmirror import KvMirror
from shared.relay_urls import Signer, load_secret
from shared.service import NatsLink, readiness_for
from shared.sessions import SessionEvent
from shared.settings import Settings
from shared.streams import StreamRecord
from shared.tasks import background

log = logs.get(__name__)

SERVICE = "relay"
ERRORS = Counter("slipstream_relay_errors_total", "Requests answered with an error", ["status"])


async def _counted(chunks: AsyncIterator[bytes], stream: str) -> AsyncIterator[bytes]:
    counter = BYTES_OUT.labels(stream)
    async for chunk in chunks:
        counter.inc(len(chunk))
        yield chunk


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def _respond(served: Served, target: Target, *, head: bool = False,
                   range_header: str | None = None) -> Response[Any]:
    stream = target.key
    if served.redirect is not None:
        return Redirect(served.redirect, status_code=302, headers=dict(SECURITY_HEADERS))
    if served.page is not None:
        headers = dict(PLAYLIST_HEADERS)
        if head:
            headers["Content-Length"] = str(served.page.size(target.prefix))
            return Response(b"", media_type=served.content_type, headers=headers)
        data = served.page.render(target.prefix)
        BYTES_OUT.labels(stream).inc(len(data))
        return Response(data, media_type=served.content_type, headers=headers)
    if served.body is None:  # pragma: no cover - Served always carries one of the three
        raise RelayError(500, "empty response")
    headers = dict(SEGMENT_HEADERS)
    if head or range_header:
        whole = await served.body.complete()
        if head:
            headers["Content-Length"] = str(len(whole))
            return Response(b"", media_type=served.content_type, headers=headers)
        start, end = _byte_range(range_header or "", len(whole))
        BYTES_OUT.labels(stream).inc(end + 1 - start)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(whole)}"
        return Response(whole[start:end + 1], status_code=206, media_type=served.content_type,
                        headers=headers)
    if served.body.done:  # whole (cached): its length is known, no chunked encoding
        headers["Content-Length"] = str(served.body.size)
    return Stream(_counted(served.body.read(), stream), media_type=served.content_type,
                  headers=headers)


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """The one byte range asked for (inclusive), or 416."""
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        raise RelayError(416, "only one byte range, as bytes=start-end, is supported")
    if not match[1]:  # the last N bytes
        return max(size - int(match[2]), 0), size - 1
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start > end or start >= size:
        raise RelayError(416, f"range outside the {size}-byte body")
    return start, end


def _error(_: Request[Any, Any, Any], exc: RelayError) -> Response[dict[str, str]]:
    ERRORS.labels(str(exc.status)).inc()
    return Response({"error": exc.reason}, status_code=exc.status, headers=SECURITY_HEADERS)


def _blocking(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k in BLOCKING_PARAMS if (v := request.query_params.get(k)) is not None}


@route("/s/{session:str}/{stream:str}/{token:str}/master.m3u8",
       http_method=[HttpMethod.GET, HttpMethod.HEAD])
async def master(request: Request[Any, Any, Any], state: State, *, session: FromPath[str],
                 stream: FromPath[str], token: FromPath[str]) -> Response[Any]:
    """The stream's master playlist, rewritten."""
    relay: Relay = state.relay
    target = await relay.authorise(session, stream, token)
    return await _respond(await relay.master(target), target, head=request.method == "HEAD")


@route("/s/{session:str}/{stream:str}/{token:str}/{kind:str}/{name:str}",
       http_method=[HttpMethod.GET, HttpMethod.HEAD])
async def resource(request: Request[Any, Any, Any], state: State, *, session: FromPath[str],
                   stream: FromPath[str], token: FromPath[str], kind: FromPath[str],
                   name: FromPath[str]) -> Response[Any]:
    """A playlist, segment, key, init section or data file of the stream."""
    relay: Relay = state.relay
    target = await relay.authorise(session, stream, token)
    served = await relay.resource(target, kind, name, _blocking(request))
    return await _respond(served, target, head=request.method == "HEAD",
                          range_header=request.headers.get("range"))


def create_app(settings: Settings, servers: list[str]) -> Edge:
    """The relay app (its edge in front of Litestar); NATS connects in the background so health
    answers from the start. ``.state`` is the Litestar app's state."""
    link = NatsLink(servers, SERVICE, settings)
    records: KvMirror[StreamRecord] = KvMirror(StreamRecord)
    policy = policy_for(settings)
    http = client(policy, timeout=10.0)
    shared = SharedState(settings.redis.url, timeout=settings.redis.timeout,
                         max_entry=16 * 1024 * 1024)
    upstream = Upstream(http, policy, cache_bytes=settings.relay.cache_bytes, shared=shared)
    reresolver = Reresolver(lambda: link.client)
    relay = Relay(Signer(load_secret(settings.relay.secret, settings.data_path)), records, upstream,
                  redirect_public=settings.relay.redirect_public_segments,
                  on_refused=reresolver.refused)

    sessions: KvMirror[SessionEvent] = KvMirror(SessionEvent)
    channels = Channels(relay, KeyRing(settings.relay.channel_keys, settings.data_path), sessions,
                        Outbox(lambda: link.client))
    upstream.on_segment = channels.on_segment

    def stream_changed(key: str, record: StreamRecord | None, revision: int) -> None:
        if record is None:
            relay.forget(key)
            channels.forget(key)

    records.on_change = stream_changed
    readiness = readiness_for(link)

    async def synced() -> str | None:
        return None if records.synced.is_set() else "streams not loaded yet"

    readiness.add("streams", synced)
    if settings.redis.url:
        readiness.add("redis", shared.check)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        link.start()

        async def follow() -> None:
            await link.ready.wait()
            if link.client is None:  # pragma: no cover - ready implies a client
                return
            await records.follow_forever(link.client.jetstream(), topology.STREAMS_BUCKET)

        async def follow_sessions() -> None:  # which session "live now" follows
            await link.ready.wait()
            if link.client is None:  # pragma: no cover - ready implies a client
                return
            await sessions.follow_forever(link.client.jetstream(), topology.SESSIONS_BUCKET)

        try:
            async with background(follow(), "relay-follow-streams", critical=True), \
                    background(follow_sessions(), "relay-follow-sessions", critical=True), \
                    background(channels.run(), "relay-channels", critical=True), \
                    background(channels.outbox.run(), "relay-channel-events", critical=True):
                yield
        finally:
            await reresolver.close()
            await upstream.close()
            await http.aclose()
            await shared.close()
            await link.close()

    cors = CORSConfig(allow_origins=sorted(settings.ui_origins),
                      allow_methods=["GET", "HEAD", "OPTIONS"])
    app = Litestar(
        route_handlers=[*ROUTES, master, resource, *channel_routes(_respond)],
        lifespan=[lifespan],
        state=State({"readiness": readiness, "relay": relay, "reresolver": reresolver,
                     "channels": channels}),
        exception_handlers={RelayError: _error},
        cors_config=cors,
        openapi_config=None,
        logging_config=None,
    )
    return Edge(app, relay, cors)
