"""``python -m services.relay``: run the relay until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from services.relay.app import SERVICE, create_app
from shared.runtime import nats_servers
from shared.service import run, serve_app
from shared.settings import Settings

DESCRIPTION = "The relay: rewrites HLS playlists from the streams KV and relays segments to viewers."


async def main(settings: Settings, stop: asyncio.Event) -> None:
    section = settings.relay
    app = create_app(settings, nats_servers(settings))
    await serve_app(service=SERVICE, settings=settings, host=section.host, port=section.port,
                    app=app, stop=stop)


if __name__ == "__main__":
    # uvloop: the relay's work is moving bytes between sockets, which libuv does for less CPU.
    sys.exit(run(SERVICE, DESCRIPTION, main, new_loop=uvloop.new_event_loop))
