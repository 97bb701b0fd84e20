"""The keep-fresh decisions, alone (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from services.extractor import worker
from shared.sessions import Phase, Session, SessionKind
from shared.streams import Health, StreamRecord

NOW = datetime(2026, 5, 3, 20, 0, tzinfo=UTC)


def record(**kw: object) -> StreamRecord:
    base = StreamRecord(id="s", session="2026.miami.race", source_id="s",
                        upstream_url="https://cdn.test/m.m3u8", resolved_at=NOW, health=Health.OK,
                        expires_at=NOW + timedelta(minutes=10))
    return msgspec.structs.replace(base, **kw)


def test_jobs_stop_when_the_session_is_not_on() -> None:
    """Only upcoming and live sessions keep their jobs (a removed source is the caller's)."""
    assert not worker.should_stop(Phase.LIVE)
    assert not worker.should_stop(Phase.UPCOMING)
    for phase in (Phase.ENDED, Phase.CANCELLED, Phase.RESCHEDULED, Phase.SCHEDULED, None):
        assert worker.should_stop(phase)


def test_resolve_when_missing_failing_or_about_to_expire() -> None:
    """A healthy record far from expiry is only probed; anything else is resolved again."""
    assert worker.needs_resolve(None, NOW)
    assert not worker.needs_resolve(record(), NOW)
    assert worker.needs_resolve(record(failures=1), NOW)
    assert worker.needs_resolve(record(expires_at=NOW + timedelta(seconds=30)), NOW)


def test_next_run_comes_before_the_url_expires() -> None:
    """The probe interval, shortened so the re-resolve happens before expiry."""
    assert worker.next_delay(record(), NOW, 10.0) == 10.0
    assert worker.next_delay(record(expires_at=NOW + timedelta(seconds=65)), NOW, 10.0) == 5.0
    assert worker.next_delay(record(expires_at=NOW), NOW, 10.0) == 1.0


def test_a_stream_is_dead_after_two_failures_and_keeps_retrying() -> None:
    """One failure degrades, the second kills; the job keeps running to catch a recovery."""
    first = worker.after_failure(record(), attempt=5, reason="HTTP 503", now=NOW, probe_interval=10)
    assert first.write is not None
    assert first.write.health is Health.DEGRADED
    second = worker.after_failure(first.write, attempt=6, reason="HTTP 503", now=NOW,
                                  probe_interval=10)
    assert second.write is not None
    assert second.write.health is Health.DEAD
    assert second.write.health_detail == "HTTP 503"
    assert second.dead_letter is None
    assert second.next_run is not None


def test_a_source_that_never_worked_is_dead_lettered_after_the_last_attempt() -> None:
    """Bounded retries with backoff, then a dead letter with the reason."""
    delays = [worker.after_failure(None, attempt=a, reason="x", now=NOW, probe_interval=10).next_run
              for a in range(1, worker.MAX_ATTEMPTS)]
    assert delays == sorted(delays)
    assert all(d is not None and d > 0 for d in delays)
    last = worker.after_failure(None, attempt=worker.MAX_ATTEMPTS, reason="no playlist", now=NOW,
                                probe_interval=10)
    assert last.stop
    assert last.dead_letter is not None
    assert "no playlist" in last.dead_letter


def test_a_session_is_over_only_after_its_end_and_the_grace() -> None:
    start = datetime(2026, 5, 24, 13, tzinfo=UTC)
    race = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco",
                   kind=SessionKind.RACE, name="Race", start=start, end=start + timedelta(hours=2))
    assert not worker.is_over(race, start + timedelta(hours=2, minutes=10), grace=900)
    assert worker.is_over(race, start + timedelta(hours=2, minutes=16), grace=900)
    open_ended = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco",
                         kind=SessionKind.RACE, name="Race", start=start)
    assert not worker.is_over(open_ended, start + timedelta(hours=3), grace=0)
    assert worker.is_over(open_ended, start + timedelta(hours=3, seconds=1), grace=0)
    tbc = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco",
                  kind=SessionKind.RACE, name="Race")
    assert not worker.is_over(tbc, start + timedelta(days=300), grace=0)
