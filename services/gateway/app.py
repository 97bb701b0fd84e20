"""App factory of the gateway: status page and API (the web UI, REST API and WebSocket feed
arrive with the gateway issue; for now it connects, applies the topology and reports health)."""

from __future__ import annotations

import html

from litestar import Litestar, MediaType, get
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from shared.health import ROUTES, ReadyReport
from shared.service import NatsLink, nats_lifespan, readiness_for
from shared.settings import Settings

SERVICE = "gateway"


@get("/api/status")
async def status(state: State) -> ReadyReport:
    """Readiness of the gateway and of its link to NATS."""
    report: ReadyReport = await state.readiness.report()
    return report


@get("/", media_type=MediaType.HTML)
async def home(state: State) -> str:
    """A plain status page until the web UI lands: what is connected, where the API is."""
    report: ReadyReport = await state.readiness.report()
    rows = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                   for k, v in report.checks.items())
    word = "ready" if report.ready else "starting"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Slipstream</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'></head>"
        f"<body style='font-family:system-ui;margin:2rem'><h1>Slipstream</h1><p>Gateway {word}.</p>"
        f"<ul>{rows}</ul><p>API schema: <a href=/schema>/schema</a></p></body></html>"
    )


def create_app(settings: Settings, servers: list[str]) -> Litestar:
    """The gateway app; NATS connects in the background so health answers from the start."""
    link = NatsLink(servers, SERVICE, settings)
    return Litestar(
        route_handlers=[*ROUTES, status, home],
        lifespan=[nats_lifespan(link)],
        state=State({"readiness": readiness_for(link), "nats": link, "settings": settings}),
        openapi_config=OpenAPIConfig(title="Slipstream gateway", version="0.1.0"),
        logging_config=None,
    )
