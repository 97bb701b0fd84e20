"""``python -m services.gateway``: run the gateway until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from services.gateway.app import SEND_BUFFER, SERVICE, create_app
from shared.runtime import nats_servers
from shared.service import run, serve_app
from shared.settings import Settings

DESCRIPTION = "The gateway: web UI, REST API and the WebSocket feed of live stream availability."


async def main(settings: Settings, stop: asyncio.Event) -> None:
    section = settings.gateway
    app = create_app(settings, nats_servers(settings))
    await serve_app(service=SERVICE, settings=settings, host=section.host, port=section.port,
                    app=app, stop=stop, send_buffer=SEND_BUFFER)


if __name__ == "__main__":
    sys.exit(run(SERVICE, DESCRIPTION, main))
