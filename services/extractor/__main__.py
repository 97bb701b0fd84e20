"""``python -m services.extractor``: run the extractor until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from services.extractor.app import DESCRIPTION, SERVICE, ExtractorApp
from shared.runtime import nats_servers
from shared.service import run, run_broker_service
from shared.settings import Settings


async def main(settings: Settings, stop: asyncio.Event) -> None:
    section = settings.extractor
    app = ExtractorApp(settings, nats_servers(settings))
    await run_broker_service(service=SERVICE, settings=settings, host=section.host,
                             port=section.port, broker=app.broker, stop=stop, work=app.work,
                             readiness=app.readiness, cleanup=app.close)


if __name__ == "__main__":
    if sys.argv[1:2] == ["check"]:
        from services.extractor.check import main as check

        sys.exit(check(sys.argv[2:]))
    sys.exit(run(SERVICE, DESCRIPTION, main))
