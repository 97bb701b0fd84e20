"""NATS connections: one set of options for nats-py clients and FastStream brokers.

Every client is named (``slipstream-<service>``, shown in NATS monitoring), reconnects forever
(nats-py gives up after about two minutes by default, which would leave a service silently
deaf) and drains on close. The first connection is retried by the service runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import nats
from fast_depends.msgspec import MsgSpecSerializer
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import Error as NatsError

from shared import logs
from shared.settings import NatsSettings

log = logs.get(__name__)

#: How long a stopping service waits for in-flight handlers and for draining its connection
#: (seconds). Its whole stop must fit in the 5 s that supervisors allow.
STOP_GRACE: Final = 2.0


def client_name(service: str) -> str:
    """The name a service's NATS connection carries."""
    return f"slipstream-{service}"


def _callbacks(name: str) -> dict[str, Any]:
    async def on_error(exc: Exception) -> None:
        log.warning("nats error", client=name, error=str(exc), error_type=type(exc).__name__)

    async def on_disconnected() -> None:
        log.warning("nats disconnected", client=name)

    async def on_reconnected() -> None:
        log.info("nats reconnected", client=name)

    async def on_closed() -> None:
        log.info("nats connection closed", client=name)

    return {"error_cb": on_error, "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected, "closed_cb": on_closed}


def connect_options(servers: list[str], service: str, settings: NatsSettings) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` (and FastStream's broker, which takes the same)."""
    name = client_name(service)
    return {
        "servers": servers,
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": settings.reconnect_wait,
        "connect_timeout": settings.connect_timeout,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        **_callbacks(name),
    }


async def connect(servers: list[str], service: str, settings: NatsSettings) -> Client:
    """Connect a plain nats-py client (one attempt; see ``shared.service.retry_connect``)."""
    return await nats.connect(**connect_options(servers, service, settings))


def broker(servers: list[str], service: str, settings: NatsSettings, **kwargs: Any) -> NatsBroker:
    """A FastStream broker with msgspec payloads and the same connection policy."""
    options = connect_options(servers, service, settings)
    # FastStream logs through a logger of ours (our handler, format and redaction; warnings
    # only unless log_level is debug); a line per message only in debug. A stop waits for
    # in-flight handlers at most STOP_GRACE: services cancel long work themselves on stop.
    return NatsBroker(serializer=MsgSpecSerializer(), graceful_timeout=STOP_GRACE,
                      logger=logging.getLogger(logs.BROKER_LOGGER), log_level=logging.DEBUG,
                      **options, **kwargs)


async def close(nc: Client) -> None:
    """Drain a connection that is up (within :data:`STOP_GRACE`), close one that is not: a
    server that is already gone is given up on at once instead of waited for through
    reconnects."""
    if nc.is_closed:
        return
    if nc.is_connected and not nc.is_draining:
        try:
            await asyncio.wait_for(nc.drain(), STOP_GRACE)
        except (TimeoutError, NatsError, OSError) as exc:
            log.warning("nats drain cut short", error=f"{type(exc).__name__}: {exc}")
        else:
            return
    # Closing flushes what is buffered into a socket that may be dead already: that is fine.
    with contextlib.suppress(NatsError, OSError):
        await nc.close()
