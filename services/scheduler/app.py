"""App factory of the scheduler: its FastStream broker (handlers are registered here)."""

from __future__ import annotations

from faststream.nats import NatsBroker

from shared import bus
from shared.settings import Settings

SERVICE = "scheduler"
DESCRIPTION = (
    "The scheduler: reads the F1 calendar and publishes each session's life cycle "
    "on SESSIONS."
)


def create_broker(settings: Settings, servers: list[str]) -> NatsBroker:
    """The scheduler's broker, with msgspec payloads and the shared connection policy."""
    return bus.broker(servers, SERVICE, settings.nats, description=DESCRIPTION)
