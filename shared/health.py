"""Health, readiness and metrics endpoints, the same in every service.

``/healthz`` answers while the process runs; ``/readyz`` runs the service's readiness checks
(NATS connected, topology present, ...) and says which one fails and why; ``/metrics`` is the
Prometheus exposition of the process registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
import prometheus_client
from litestar import Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from nats.aio.client import Client

from shared import topology

#: A check returns ``None`` when fine, else a short reason.
Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT: Final = 2.0


class ReadyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``/readyz``."""

    ready: bool
    checks: dict[str, str]
    #: Degradations that do not make the service unready (e.g. a stale calendar in force).
    warnings: dict[str, str] = msgspec.field(default_factory=dict)


class Readiness:
    """Named readiness checks of one service."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.warnings: list[Callable[[], dict[str, str]]] = []

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def report(self) -> ReadyReport:
        async def run(check: Check) -> str | None:
            try:
                return await asyncio.wait_for(check(), CHECK_TIMEOUT)
            except TimeoutError:
                return f"no answer within {CHECK_TIMEOUT:.0f} s"

        names = list(self.checks)
        results = await asyncio.gather(*(run(self.checks[n]) for n in names))
        checks = {n: r or "ok" for n, r in zip(names, results, strict=True)}
        warnings = {k: v for source in self.warnings for k, v in source().items()}
        return ReadyReport(ready=all(r is None for r in results), checks=checks, warnings=warnings)


def nats_checks(readiness: Readiness, client: Callable[[], Client | None]) -> None:
    """Add the NATS checks: connected, and every part of the topology present."""
    async def connected() -> str | None:
        nc = client()
        if nc is None:
            return "not connected yet"
        if not nc.is_connected:
            return "reconnecting" if nc.is_reconnecting else "disconnected"
        return None

    async def topology_present() -> str | None:
        nc = client()
        if nc is None or not nc.is_connected:
            return "unknown while NATS is not connected"
        absent = await topology.missing(nc.jetstream())
        return f"missing: {', '.join(absent)}" if absent else None

    readiness.add("nats", connected)
    readiness.add("topology", topology_present)


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    """Alive as long as the process answers."""
    return {"status": "alive"}


@get("/readyz", include_in_schema=False)
async def readyz(state: State) -> Response[ReadyReport]:
    """Ready when every check passes; 503 with the reasons otherwise."""
    report = await state.readiness.report()
    return Response(report, status_code=HTTP_200_OK if report.ready else
                    HTTP_503_SERVICE_UNAVAILABLE)


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics() -> Response[bytes]:
    """Prometheus metrics of this process."""
    return Response(prometheus_client.generate_latest(),
                    media_type=prometheus_client.CONTENT_TYPE_LATEST)


ROUTES: Final = [healthz, readyz, metrics]
