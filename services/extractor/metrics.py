"""The extractor's Prometheus figures (served at ``/metrics``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

ATTEMPTS: Final = Counter("slipstream_extractor_attempts_total",
                          "Extraction attempts, by extractor and outcome (ok, failed, refused)",
                          ["extractor", "outcome"])
ATTEMPT_SECONDS: Final = Histogram("slipstream_extractor_attempt_seconds",
                                   "Time of one extraction attempt, probe included", ["extractor"],
                                   buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30))
EVENTS: Final = Counter("slipstream_extractor_session_events_total",
                        "Session events consumed, by outcome (handled, retried, dead_letter)",
                        ["outcome"])
JOBS: Final = Counter("slipstream_extractor_jobs_total",
                      "Keep-fresh job runs, by outcome (again, done, retried, dead_letter)",
                      ["outcome"])
