"""App factory of the extractor: its FastStream broker (handlers are registered here)."""

from __future__ import annotations

from faststream.nats import NatsBroker

from shared import bus
from shared.settings import Settings

SERVICE = "extractor"
DESCRIPTION = (
    "The extractor: resolves playable HLS streams for sessions and keeps them "
    "fresh in the streams KV."
)


def create_broker(settings: Settings, servers: list[str]) -> NatsBroker:
    """The extractor's broker, with msgspec payloads and the shared connection policy."""
    return bus.broker(servers, SERVICE, settings.nats, description=DESCRIPTION)
