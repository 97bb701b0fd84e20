"""App factory of the relay: a Litestar app over the streams KV (relay routes arrive with the
relay issue; for now it connects, applies the topology and reports its health)."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State

from shared.health import ROUTES
from shared.service import NatsLink, nats_lifespan, readiness_for
from shared.settings import Settings

SERVICE = "relay"


def create_app(settings: Settings, servers: list[str]) -> Litestar:
    """The relay app; NATS connects in the background so health answers from the start."""
    link = NatsLink(servers, SERVICE, settings)
    return Litestar(
        route_handlers=ROUTES,
        lifespan=[nats_lifespan(link)],
        state=State({"readiness": readiness_for(link), "nats": link, "settings": settings}),
        openapi_config=None,
        logging_config=None,
    )
