"""``python -m services.scheduler``: run the scheduler until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from services.scheduler.app import DESCRIPTION, SERVICE, SchedulerApp
from shared.runtime import nats_servers
from shared.service import run, run_broker_service
from shared.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    section = settings.scheduler
    app = SchedulerApp(settings, nats_servers(settings))
    await run_broker_service(service=SERVICE, settings=settings, host=section.host,
                             port=section.port, broker=app.broker, stop=stop, work=app.work,
                             readiness=app.readiness)


if __name__ == "__main__":
    sys.exit(run(SERVICE, DESCRIPTION, main))
