"""``python -m services.gateway``: run the gateway until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import sys

import uvloop

from services.gateway.app import SEND_BUFFER, SERVICE, create_app
from shared.runtime import nats_servers
from shared.service import run, serve_app
from shared.settings import Settings

DESCRIPTION = "The gateway: web UI, REST API and the WebSocket feed of live stream availability."


#: Collector thresholds for the feed's fan-out. With Python's defaults, the objects a change
#: leaves alive for each of thousands of clients are promoted to the oldest generation and set
#: off full collections of every connection's objects: 600-700 ms stalls every few seconds with
#: 5,000 clients (bench/ws_feed.py). Rarer young collections keep them young; p99 went from
#: 699 ms to 126 ms, next to 108 ms for a bare websockets fan-out on the same machine.
GC_THRESHOLDS = (50_000, 100, 100)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    section = settings.gateway
    app = create_app(settings, nats_servers(settings))
    await serve_app(service=SERVICE, settings=settings, host=section.host, port=section.port,
                    app=app, stop=stop, send_buffer=SEND_BUFFER, ws_ping=section.ping_interval)


if __name__ == "__main__":
    # uvloop: the feed's fan-out is thousands of small socket writes per change.
    sys.exit(run(SERVICE, DESCRIPTION, main, new_loop=uvloop.new_event_loop))
