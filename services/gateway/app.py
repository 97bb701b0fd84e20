"""App factory of the gateway: the web UI (built from ``ui/``), the WebSocket feed, the REST API
over the ``sessions`` and ``streams`` buckets, the M3U and ICS exports, health and metrics. Only
public views ever leave: no upstream URL, header or cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Response, Router, WebSocket, get, websocket
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, State
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
    WebSocketDisconnect,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, FromQuery
from litestar.static_files import create_static_files_router

import shared
from services.gateway.admin import Admin, admin_tokens
from services.gateway.admin import follow as admin_follow
from services.gateway.admin import router as admin_router
from services.gateway.channels import ChannelBoard, KeyRing, follow_switches
from services.gateway.export_routes import EXPORT_ROUTES, logo
from services.gateway.feed import GONE, FeedClient, Hub, stream_key_parts
from services.gateway.views import Views, ics, m3u
from shared import logs, topology
from shared.channels import LIVE_NOW, ChannelSwitch
from shared.feed import CLOSE_REASONS, CLOSE_TRY_LATER, SessionView, Snapshot
from shared.health import ROUTES, ReadyReport
from shared.kvmirror import KvMirror
from shared.relay_urls import Signer, load_secret
from shared.service import NatsLink, readiness_for
from shared.sessions import SessionEvent, status_of
from shared.settings import Settings
from shared.sources import SourceRecord, SourceStats
from shared.streams import StreamRecord, StreamView
from shared.subjects import InvalidTokenError, check_session_key
from shared.tasks import background

SERVICE = "gateway"
log = logs.get(__name__)


class SessionDetail(SessionView, frozen=True, kw_only=True):
    """One session with its streams (public views)."""

    streams: list[StreamView]


class LiveNow(SessionView, frozen=True, kw_only=True):
    """A live session with its streams."""

    streams: list[StreamView]


def token_ok(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request carries the gateway's token (always, when none is configured)."""
    expected: str | None = connection.app.state.token
    if expected is None:
        return True
    given = connection.query_params.get("token") or ""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not token_ok(connection):
        raise NotAuthorizedException("this gateway needs its token: Authorization: Bearer or ?token=")


@get("/api/status", guards=[require_token])
async def status(state: State) -> ReadyReport:
    """Readiness of the gateway and of its link to NATS."""
    report: ReadyReport = await state.readiness.report()
    return report


@get("/api/sessions", sync_to_thread=False, guards=[require_token])
def sessions(state: State, season: FromQuery[int | None] = None) -> list[SessionView]:
    """Every session (the season calendar), by start time, with its current phase and, once it
    has streams, its channel (``channel_url``, ``on_air``)."""
    views: Views = state.views
    return views.session_views(season)


@get("/api/sessions/{key:str}", sync_to_thread=False, guards=[require_token])
def session(state: State, key: FromPath[str]) -> SessionDetail:
    """One session, with its streams and its channel."""
    views: Views = state.views
    try:
        check_session_key(key)
    except InvalidTokenError as exc:
        raise NotFoundException(f"no session {key!r}") from exc
    found = views.session(key)
    if found is None:
        raise NotFoundException(f"no session {key!r}")
    return SessionDetail(**msgspec.structs.asdict(views.session_view(found)),
                         streams=views.stream_views(key))


@get("/api/streams", sync_to_thread=False, guards=[require_token])
def streams(state: State, session: FromQuery[str | None] = None) -> list[StreamView]:
    """Every stream (public views), or those of one session; ``playback_url`` is the relay's.
    A ``session`` that is no session key is a 400, not an empty list."""
    if session is not None:
        try:
            check_session_key(session)
        except InvalidTokenError as exc:
            raise ValidationException(f"session: {exc}") from exc
    views: Views = state.views
    return views.stream_views(session)


@get("/api/live", sync_to_thread=False, guards=[require_token])
def live(state: State) -> list[LiveNow]:
    """The sessions live now, with their streams and channels."""
    views: Views = state.views
    return [LiveNow(**msgspec.structs.asdict(views.session_view(s)),
                    streams=views.stream_views(s.session.key)) for s in views.live()]


@get("/export/live.m3u", sync_to_thread=False, guards=[require_token])
def export_m3u(state: State) -> Response[str]:
    """An M3U playlist of the live streams, for VLC, Kodi, Jellyfin or Threadfin."""
    views: Views = state.views
    live_now = views.live()
    text = m3u(live_now, [v for s in live_now for v in views.stream_views(s.session.key)])
    return Response(text, media_type="audio/x-mpegurl",
                    headers={"Content-Disposition": 'inline; filename="slipstream-live.m3u"'})


@get("/export/calendar.ics", sync_to_thread=False, guards=[require_token])
def export_ics(state: State) -> Response[str]:
    """The sessions as an iCalendar feed."""
    views: Views = state.views
    return Response(ics(views.session_statuses(), datetime.now(UTC)),
                    media_type="text/calendar; charset=utf-8")


#: Kernel send buffer of each connection: a client that stops reading blocks the feed's writes
#: after this much (plus the 64 KiB transport buffer), so its backlog fills and it is cut off.
SEND_BUFFER = 64 * 1024
CLOSE_GRACE = 30.0
_encoder = msgspec.json.Encoder()


@websocket("/ws")
async def feed(socket: WebSocket[Any, Any, Any], state: State,
               session: FromQuery[str | None] = None) -> None:
    """The live feed: a snapshot, then every change (see ``shared/feed.py``)."""
    origin = socket.headers.get("origin")
    if origin is not None and origin not in state.origins:
        await socket.close(code=4003, reason="origin not allowed")  # before accept: HTTP 403
        return
    if not token_ok(socket):
        await socket.close(code=4003, reason="token required")
        return
    if session is not None:
        try:
            check_session_key(session)
        except InvalidTokenError:
            await socket.close(code=4003, reason="bad session filter")
            return
    hub: Hub = state.hub
    views: Views = state.views
    client = hub.join(session)
    if client is None:
        await socket.close(code=CLOSE_TRY_LATER, reason="too many connections")
        return
    try:
        await socket.accept()
        snapshot = Snapshot(
            sessions=[s for s in views.session_views()
                      if session is None or s.session.key == session],
            streams=views.stream_views(session),
            revision=max(views.sessions.revision, views.streams.revision))
        await socket.send_text(_encoder.encode(snapshot).decode())
        await _pump(socket, client, hub)
    finally:
        hub.leave(client)


async def _pump(socket: WebSocket[Any, Any, Any], client: FeedClient, hub: Hub) -> None:
    """Send the client's backlog until it disconnects or is cut off for not reading."""
    async def receive() -> None:
        # Clients send nothing we need; reading notices a disconnect, which ends the pump.
        try:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await socket.receive_data(mode="text")
        finally:
            client.cut(GONE)

    async def send(text: str) -> None:
        await socket.send({"type": "websocket.send", "text": text, "bytes": None})

    def direct(text: str) -> bool:
        """Run one send up to its first wait: uvicorn's WebSocket send waits only while the
        socket's buffer is full, before it writes anything, so a send that would wait is
        abandoned with nothing written (the pump sends it later, in order)."""
        step = send(text)
        try:
            step.send(None)
        except StopIteration:
            return True
        except (WebSocketDisconnect, OSError, RuntimeError):
            return False  # the pump's send meets the same error and ends
        step.close()
        return False

    client.direct = direct
    async with background(receive(), "ws-receive"):
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await client.pump(send)
    if client.closing not in (None, GONE):
        hub.leave(client)
        # The close frame waits behind what the client has not read: a client that reads again
        # within the grace period learns why (4008); one that never does is dropped by TCP.
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            async with asyncio.timeout(CLOSE_GRACE):
                await socket.close(code=client.closing, reason=CLOSE_REASONS.get(client.closing, ""))


UI_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"


@get("/", media_type=MediaType.HTML, include_in_schema=False)
async def home(state: State) -> Response[bytes] | str:
    """The web UI, or a plain status page when it was not built."""
    index: Path = state.ui / "index.html"
    with contextlib.suppress(FileNotFoundError):
        return Response(await asyncio.to_thread(index.read_bytes), media_type=MediaType.HTML,
                        headers={"Cache-Control": "no-cache"})
    report: ReadyReport = await state.readiness.report()
    rows = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                   for k, v in report.checks.items())
    word = "ready" if report.ready else "starting"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Slipstream</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'></head>"
        f"<body style='font-family:system-ui;margin:2rem'><h1>Slipstream</h1><p>Gateway {word}."
        " The web UI is not built: <code>make up</code> builds it.</p>"
        f"<ul>{rows}</ul><p><a href=/api/live>live now</a> · <a href=/api/sessions>sessions</a>"
        " · <a href=/export/live.m3u>M3U</a> · <a href=/export/calendar.ics>calendar</a>"
        " · <a href=/schema>API schema</a></p></body></html>"
    )


def _ui_assets(ui: Path) -> Any:
    """The UI's hashed assets, cached for a year (a new build has new names)."""
    return create_static_files_router(path="/assets", directories=[ui / "assets"],
                                      cache_control=CacheControlHeader(max_age=31536000),
                                      include_in_schema=False, name="ui-assets")


ASYNCAPI = Path(shared.__file__).resolve().parent / "asyncapi.json"


@get("/asyncapi.json", media_type=MediaType.JSON)
async def asyncapi() -> Response[bytes]:
    """The AsyncAPI 3.0 document of every NATS subject and payload (``slipstream asyncapi``)."""
    return Response(await asyncio.to_thread(ASYNCAPI.read_bytes), media_type=MediaType.JSON)


@get("/favicon.svg", include_in_schema=False, media_type="image/svg+xml")
async def favicon(state: State) -> Response[bytes]:
    """The UI's icon."""
    try:
        icon = await asyncio.to_thread((state.ui / "favicon.svg").read_bytes)
        return Response(icon, media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})
    except FileNotFoundError as exc:
        raise NotFoundException("no icon") from exc


def create_app(settings: Settings, servers: list[str]) -> Litestar:
    """The gateway app; NATS connects in the background so health answers from the start."""
    link = NatsLink(servers, SERVICE, settings)
    ui = Path(settings.gateway.ui_dir).expanduser() if settings.gateway.ui_dir else UI_DIST
    hub = Hub()
    views = Views(sessions=KvMirror[SessionEvent](SessionEvent),
                  streams=KvMirror(StreamRecord, keep_lost=settings.gateway.reresolve_window),
                  signer=Signer(load_secret(settings.relay.secret, settings.data_path)),
                  relay_url=settings.relay_public_url, url_ttl=settings.relay.url_ttl,
                  channels=ChannelBoard(KeyRing(settings.relay.channel_keys, settings.data_path),
                                        settings.relay_public_url))

    def channel_changed(session: str) -> None:
        change = views.channel_update(session)
        if change is not None:
            hub.channel_changed(change)

    def stream_changed(key: str, record: StreamRecord | None, revision: int) -> None:
        session_key, stream_id = stream_key_parts(key)
        lost = views.streams.lost.get(key) if record is None else None
        view = (views.view(record, revision) if record else
                views.reresolving(lost) if lost else None)
        hub.stream_changed(view, session_key, stream_id, revision)
        channel_changed(session_key)

    async def expire_reresolving() -> None:
        """Streams not re-resolved within the window are gone after all: say so."""
        while True:
            await asyncio.sleep(min(5.0, settings.gateway.reresolve_window / 4))
            for key, lost in views.streams.expire_lost(time.monotonic()):
                log.warning("stream not re-resolved in time; taken as gone", stream=key)
                hub.stream_changed(None, *stream_key_parts(key), lost.revision)
                channel_changed(stream_key_parts(key)[0])

    def session_changed(key: str, event: SessionEvent | None, revision: int) -> None:
        if event is not None:
            hub.session_changed(views.session_view(status_of(event, revision)))

    def switched(switch: ChannelSwitch) -> None:
        if views.channels.switched(switch) and switch.channel != LIVE_NOW:
            channel_changed(switch.channel)

    admin = Admin(sources=KvMirror(SourceRecord), stats=KvMirror(SourceStats),
                  streams=views.streams)
    views.streams.on_change = stream_changed
    views.sessions.on_change = session_changed
    readiness = readiness_for(link)

    async def synced() -> str | None:
        if views.sessions.synced.is_set() and views.streams.synced.is_set():
            return None
        return "sessions and streams not loaded yet"

    readiness.add("data", synced)

    async def follow() -> None:
        await link.ready.wait()
        if link.client is None:  # pragma: no cover - ready implies a client
            return
        js = link.client.jetstream()
        # A bucket re-created behind our back restarts its revisions: clients reconnect for a
        # fresh snapshot rather than ignore the new, lower revisions.
        streams = views.streams.follow_forever(js, topology.STREAMS_BUCKET, on_reset=hub.reset)
        async with (background(streams, "streams", critical=True),
                    background(admin_follow(admin, link.client), "sources", critical=True),
                    background(follow_switches(link.client, switched), "channel-switches",
                               critical=True)):
            await views.sessions.follow_forever(js, topology.SESSIONS_BUCKET, on_reset=hub.reset)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        link.start()
        try:
            async with (background(follow(), "gateway-follow", critical=True),
                        background(hub.run(), "feed-tick", critical=True),
                        background(expire_reresolving(), "reresolving-expiry", critical=True)):
                yield
        finally:
            await link.close()

    return Litestar(
        route_handlers=[*ROUTES, status, sessions, session, streams, live, export_m3u, export_ics,
                        feed, home, favicon, asyncapi, _ui_assets(ui), admin_router(),
                        Router("/export", route_handlers=EXPORT_ROUTES, guards=[require_token]),
                        logo],
        lifespan=[lifespan],
        state=State({"readiness": readiness, "views": views, "hub": hub,
                     "origins": settings.ui_origins, "ui": ui,
                     "token": settings.gateway.token, "admin": admin,
                     "admin_tokens": admin_tokens(settings)}),
        openapi_config=OpenAPIConfig(title="Slipstream gateway", version="0.1.0"),
        logging_config=None,
    )
