"""The scheduler's Prometheus figures (served at ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

PUBLISHED: Final = Counter("slipstream_scheduler_events_total",
                           "Session events, by phase and whether they were new on the stream",
                           ["phase", "result"])
