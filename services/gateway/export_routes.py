"""The routes of the channel exports for IPTV players (``exports.py`` builds the documents).

The app mounts :data:`EXPORT_ROUTES` under ``/export`` behind the gateway's token guard: a
player sends the token as ``?token=``, which the documents repeat in the links they give (the
guide's URL), since the player was allowed to fetch them. Channel URLs carry their own
signature instead, which authorises that channel only. Logos are public.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from services.gateway.exports import (
    LOGO_PATH,
    Links,
    channels,
    logo_png,
    logo_svg,
    m3u,
    xmltv,
)
from services.gateway.views import Views
from shared.channels import check_channel
from shared.subjects import InvalidTokenError

#: The documents change as sessions come and go, and repeat the gateway's token: kept by no cache.
NO_STORE = {"Cache-Control": "no-store"}


def _links(request: Request[Any, Any, Any], state: State) -> Links:
    token: str | None = state.token
    return Links(gateway=str(request.base_url), token=token)


@get("/channels.m3u", sync_to_thread=False)
def channels_m3u(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """The channels for IPTV players (Jellyfin, Kodi, Threadfin): "live now", then one per live
    or upcoming session; each plays the best stream of its session and switches when it fails."""
    views: Views = state.views
    links = _links(request, state)
    found = channels(views.session_statuses(), datetime.now(UTC), views.channels.url, links)
    return Response(m3u(found, links), media_type="audio/x-mpegurl",
                    headers={"Content-Disposition": 'inline; filename="slipstream-channels.m3u"',
                             **NO_STORE})


@get("/guide.xml", sync_to_thread=False)
def guide_xml(request: Request[Any, Any, Any], state: State) -> Response[str]:
    """The programme guide (XMLTV) of the channels: every session as a programme."""
    views: Views = state.views
    now = datetime.now(UTC)
    statuses = views.session_statuses()
    found = channels(statuses, now, views.channels.url, _links(request, state))
    return Response(xmltv(found, statuses, now), media_type="application/xml; charset=utf-8",
                    headers=NO_STORE)


EXPORT_ROUTES = [channels_m3u, guide_xml]


@get(f"{LOGO_PATH}/{{name:str}}", sync_to_thread=False, include_in_schema=False)
def logo(name: FromPath[str]) -> Response[bytes]:
    """A channel's logo (``<channel>.png`` or ``.svg``): public, it shows the kind of session
    and nothing else."""
    channel, dot, kind = name.rpartition(".")
    try:
        check_channel(channel)
    except InvalidTokenError as exc:
        raise NotFoundException("no such logo") from exc
    cache = {"Cache-Control": "max-age=86400"}
    if dot and kind == "png":
        return Response(logo_png(channel), media_type="image/png", headers=cache)
    if dot and kind == "svg":
        return Response(logo_svg(channel).encode(), media_type="image/svg+xml", headers=cache)
    raise NotFoundException("no such logo")
