"""``python -m services.scheduler``: run the scheduler until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from services.scheduler.app import DESCRIPTION, SERVICE, create_broker
from shared.runtime import nats_servers
from shared.service import run, run_broker_service
from shared.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    section = settings.scheduler
    broker = create_broker(settings, nats_servers(settings))
    await run_broker_service(service=SERVICE, settings=settings, host=section.host,
                             port=section.port, broker=broker, stop=stop)


if __name__ == "__main__":
    sys.exit(run(SERVICE, DESCRIPTION, main))
