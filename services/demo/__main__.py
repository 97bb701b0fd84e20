"""``python -m services.demo``: run the demo origin and write the demo calendar."""

from __future__ import annotations

import asyncio
import sys

from services.demo.app import create_app
from services.demo.calendar import demo_calendar, to_toml
from shared import logs
from shared.calendar import demo_calendar_path
from shared.http import bind, server
from shared.service import run
from shared.settings import Settings
from shared.times import SystemClock

log = logs.get("services.demo")


async def main(settings: Settings, stop: asyncio.Event) -> None:
    sock = bind(settings.demo.host, settings.demo.port, "demo.port")
    path = demo_calendar_path(settings.data_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(to_toml(demo_calendar(SystemClock().now())))
    tmp.replace(path)
    srv = server(create_app(gallery=settings.demo.gallery), log_level=settings.log_level)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(srv.serve([sock]))
        log.info("demo origin ready", url=f"http://{settings.demo.host}:{settings.demo.port}/",
                 calendar=str(path), gallery=settings.demo.gallery)
        await stop.wait()
        srv.should_exit = True


if __name__ == "__main__":
    sys.exit(run("demo", "The demo origin: a looping live HLS stream, source pages and a calendar.",
                 main))
