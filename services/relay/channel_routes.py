"""The relay's channel routes: thin handlers over :class:`services.relay.channel.Channels`.

    /c/<channel>/<token>/master.m3u8            the channel's variant slots
    /c/<channel>/<token>/v<slot>.m3u8           a slot's media playlist
    /c/<channel>/<token>/<stream-key>/<kind>/<ref>  a segment, key or init section it names
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from litestar import HttpMethod, Request, Response, route
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from services.relay.channel import Channels
from services.relay.relay import Served

#: How the app answers with a :class:`Served` (``_respond`` of :mod:`services.relay.app`).
Respond = Callable[..., Awaitable[Response[Any]]]


class Answering(NamedTuple):
    """What ``respond`` needs of a request's target: a metrics label and the prefix its
    playlists' slots take (none: a channel's URIs are relative already)."""

    key: str
    prefix: str = ""


def channel_routes(respond: Respond) -> list[HTTPRouteHandler]:
    """The channel routes, answering through the app's ``respond``."""

    @route("/c/{channel:str}/{token:str}/{name:str}", http_method=[HttpMethod.GET, HttpMethod.HEAD])
    async def channel_playlist(request: Request[Any, Any, Any], state: State, *,
                               channel: FromPath[str], token: FromPath[str],
                               name: FromPath[str]) -> Response[Any]:
        """A channel's master playlist, or one of its slots' media playlists."""
        channels: Channels = state.channels
        found = channels.authorise(channel, token)
        served: Served = await (channels.master(found) if name == "master.m3u8"
                                else channels.media(found, name))
        return await respond(served, Answering(f"channel:{channel}"), head=request.method == "HEAD")

    @route("/c/{channel:str}/{token:str}/{stream:str}/{kind:str}/{name:str}",
           http_method=[HttpMethod.GET, HttpMethod.HEAD])
    async def channel_resource(request: Request[Any, Any, Any], state: State, *,
                               channel: FromPath[str], token: FromPath[str], stream: FromPath[str],
                               kind: FromPath[str], name: FromPath[str]) -> Response[Any]:
        """A segment, key or init section one of the channel's playlists named."""
        channels: Channels = state.channels
        found = channels.authorise(channel, token)
        served = await channels.resource(found, stream, kind, name)
        return await respond(served, Answering(f"channel:{channel}"),
                             head=request.method == "HEAD", range_header=request.headers.get("range"))

    return [channel_playlist, channel_resource]
