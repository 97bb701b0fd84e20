"""What one run of a keep-fresh job decides, given the session's phase and the current record.

Pure: it gets the session phase, the record in the KV (if any) and the outcome of this run's
probe or resolution, and says what to write, whether to stop, and when to run next. The NATS
side (``jobs.py``) does the I/O. Rules:

* the session is not on (ended, cancelled, moved away, not yet upcoming): stop (``jobs.py``
  stops a job whose source is gone too, and deletes the record);
* no record yet: resolve; a failure retries with backoff and, after ``MAX_ATTEMPTS``, goes to
  the dead letters (a source that never worked must not loop forever);
* a record: probe it; re-resolve when its URL is about to expire or it has failed; one failure
  makes it degraded, two make it dead (so within two probe intervals); a dead stream keeps being
  retried for as long as the session runs, and comes back by itself when its source recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import msgspec

from shared.sessions import Phase, Session
from shared.streams import Health, StreamRecord

MAX_ATTEMPTS: Final = 6
BACKOFF: Final = (2.0, 5.0, 15.0, 30.0, 60.0, 120.0)
#: Re-resolve this long before a URL's expiry.
EXPIRY_MARGIN: Final = timedelta(seconds=60)
ACTIVE: Final = frozenset({Phase.UPCOMING, Phase.LIVE})


@dataclass(frozen=True)
class Decision:
    """What to do after a run: write the record, then stop, retry or dead-letter."""

    write: StreamRecord | None = None
    stop: bool = False
    next_run: float | None = None
    dead_letter: str | None = None


#: How long a session without a scheduled end is assumed to run.
DEFAULT_LENGTH: Final = timedelta(hours=3)


def is_over(session: Session, now: datetime, grace: float) -> bool:
    """Whether ``session`` has certainly ended by ``now`` (its end, or start plus three hours,
    plus ``grace`` seconds); a session without a start time never is."""
    if session.start is None:
        return False
    end = session.end or session.start + DEFAULT_LENGTH
    return now > end + timedelta(seconds=grace)


def should_stop(phase: Phase | None) -> bool:
    """Whether the session is not on (any more, or yet): its job has nothing left to do."""
    return phase not in ACTIVE


def needs_resolve(record: StreamRecord | None, now: datetime) -> bool:
    """Whether this run must resolve (not just probe): no record, expiring, or failing."""
    if record is None or record.failures > 0 or record.health is Health.DEAD:
        return True
    return record.expires_at is not None and record.expires_at - EXPIRY_MARGIN <= now


def next_delay(record: StreamRecord, now: datetime, probe_interval: float) -> float:
    """Seconds to the next run: the probe interval, or sooner if the URL expires before."""
    delay = probe_interval
    if record.expires_at is not None:
        delay = min(delay, (record.expires_at - EXPIRY_MARGIN - now).total_seconds())
    return max(delay, 1.0)


def after_failure(record: StreamRecord | None, *, attempt: int, reason: str, now: datetime,
                  probe_interval: float) -> Decision:
    """A run that neither resolved nor probed successfully."""
    if record is None:
        if attempt >= MAX_ATTEMPTS:
            return Decision(stop=True, dead_letter=f"no stream after {attempt} attempts: {reason}")
        return Decision(next_run=BACKOFF[min(attempt, len(BACKOFF)) - 1])
    failures = record.failures + 1
    health = Health.DEGRADED if failures == 1 else Health.DEAD
    failed = msgspec.structs.replace(record, failures=failures, health=health,
                                     health_detail=reason[:300])
    return Decision(write=failed, next_run=min(probe_interval, BACKOFF[min(failures, 6) - 1]))


def after_success(record: StreamRecord, now: datetime, probe_interval: float) -> Decision:
    """A run that produced a healthy (or merely degraded) record."""
    return Decision(write=record, next_run=next_delay(record, now, probe_interval))
