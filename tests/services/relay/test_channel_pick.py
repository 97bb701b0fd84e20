"""Which stream a channel puts on air (pure): triggers, scores, hysteresis, variant matching."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.relay.channel_pick import (
    BENCH,
    ERRORS_TO_SWITCH,
    HOLD,
    Candidate,
    Observed,
    Picker,
    Rendition,
    match,
    score,
    trouble,
)
from shared.channels import SwitchReason
from shared.streams import Health

TARGET = 2.0


def watched(now: float, seq: int = 100) -> Observed:
    obs = Observed()
    obs.playlist_ok(now, seq, TARGET, ended=False)
    return obs


def pair(main: Observed | None = None, backup: Observed | None = None, *,
         main_health: Health = Health.OK) -> dict[str, Candidate]:
    return {"main": Candidate("main", main_health, 20, main),
            "backup": Candidate("backup", Health.OK, 10, backup)}


def on_air(picker: Picker, candidates: dict[str, Candidate], now: float = 0.0) -> None:
    decision = picker.decide(now, candidates)
    assert decision is not None
    assert (decision.previous, decision.reason) == (None, SwitchReason.START)


def test_the_higher_priority_stream_starts() -> None:
    """With nothing on air, the best stream goes on air; priority breaks a tie of health."""
    picker = Picker()
    on_air(picker, pair())
    assert picker.on_air == "main"
    assert picker.decide(1.0, pair()) is None  # then it stays


def test_health_outweighs_priority() -> None:
    """A degraded stream of a preferred source loses to a healthy one."""
    picker = Picker()
    on_air(picker, pair(main_health=Health.DEGRADED))
    assert picker.on_air == "backup"


def test_a_dead_stream_on_air_is_replaced() -> None:
    """Two failed playlist fetches in a row: reason dead, the other stream goes on air."""
    obs = watched(0.0)
    picker = Picker()
    on_air(picker, pair(obs))
    obs.playlist_failed(1.0, "HTTP 503")
    assert picker.decide(1.0, pair(obs)) is None  # one failure is not death
    obs.playlist_failed(1.5, "HTTP 503")
    decision = picker.decide(1.5, pair(obs))
    assert decision is not None
    assert (decision.previous, decision.to, decision.reason) == ("main", "backup", SwitchReason.DEAD)
    assert "HTTP 503" in decision.detail


def test_a_stream_reported_dead_or_removed_is_replaced() -> None:
    """The extractor's verdict and the record's removal count as much as what the relay saw."""
    picker = Picker()
    on_air(picker, pair())
    decision = picker.decide(1.0, pair(main_health=Health.DEAD))
    assert decision is not None
    assert decision.reason == SwitchReason.DEAD
    assert decision.to == "backup"
    # The backup's record is removed; main, though healthy again, is benched: off air.
    decision = picker.decide(2.0, {"main": Candidate("main", Health.OK, 20)})
    assert decision is not None
    assert (decision.previous, decision.to, decision.reason) == ("backup", None, SwitchReason.REMOVED)
    decision = picker.decide(1.0 + BENCH, {"main": Candidate("main", Health.OK, 20)})
    assert decision is not None
    assert (decision.previous, decision.to, decision.reason) == (None, "main", SwitchReason.START)


def test_a_stall_is_seen_after_two_target_durations() -> None:
    """No new segment for more than two target durations: reason stalled; not a moment before."""
    obs = watched(0.0)
    picker = Picker()
    on_air(picker, pair(obs))
    obs.playlist_ok(1.0, 100, TARGET, ended=False)
    assert picker.decide(2 * TARGET, pair(obs)) is None
    decision = picker.decide(2 * TARGET + 0.01, pair(obs))
    assert decision is not None
    assert decision.reason == SwitchReason.STALLED


def test_an_advancing_stream_never_stalls() -> None:
    """A new segment every target duration keeps a stream on air for ever."""
    obs = watched(0.0)
    picker = Picker()
    on_air(picker, pair(obs))
    for tick in range(1, 400):
        now = tick * 0.5
        obs.playlist_ok(now, 100 + int(now // TARGET), TARGET, ended=False)
        assert picker.decide(now, pair(obs)) is None


def test_an_ended_playlist_is_replaced() -> None:
    """A playlist that turns VOD or ends: reason ended."""
    obs = watched(0.0)
    picker = Picker()
    on_air(picker, pair(obs))
    obs.playlist_ok(1.0, 101, TARGET, ended=True)
    decision = picker.decide(1.0, pair(obs))
    assert decision is not None
    assert decision.reason == SwitchReason.ENDED


def test_segment_errors_take_a_stream_off_air() -> None:
    """Three failed segments within a minute: reason errors; errors older than that forgotten."""
    obs = watched(0.0)
    picker = Picker()
    on_air(picker, pair(obs))
    obs.segment_done(1.0, 0.1, failed=True)
    obs.segment_done(2.0, 0.1, failed=True)
    for t in range(3, 62):
        obs.playlist_ok(float(t), 100 + t, TARGET, ended=False)
    assert picker.decide(62.0, pair(obs)) is None
    obs.segment_done(62.5, 0.1, failed=True)
    assert obs.recent_errors(62.5) == 1  # the first two are more than a minute old
    for t in (63.0, 64.0):
        obs.segment_done(t, 0.1, failed=True)
        obs.playlist_ok(t, 200, TARGET, ended=False)
    decision = picker.decide(64.0, pair(obs))
    assert decision is not None
    assert decision.reason == SwitchReason.ERRORS
    assert f"{ERRORS_TO_SWITCH} segment errors" in decision.detail


def test_an_intermittent_stream_costs_one_switch() -> None:
    """A stream failing every other segment, for ten minutes, and never going away: one switch
    away from it; it is benched, and then not worth leaving a healthy stream for."""
    main, backup = watched(0.0), watched(0.0)
    picker = Picker()
    on_air(picker, pair(main, backup))
    switches = []
    for tick in range(1, 1200):
        now = tick * 0.5
        seq = 100 + int(now // TARGET)
        main.playlist_ok(now, seq, TARGET, ended=False)
        backup.playlist_ok(now, seq, TARGET, ended=False)
        if tick % 4 == 0:  # one segment per target duration, every other one failing
            main.segment_done(now, 0.2, failed=tick % 8 == 0)
            backup.segment_done(now, 0.2, failed=False)
        decision = picker.decide(now, pair(main, backup))
        if decision is not None:
            switches.append(decision)
    assert [(d.previous, d.to, d.reason) for d in switches] == \
        [("main", "backup", SwitchReason.ERRORS)]


def test_a_failed_stream_is_not_taken_back_for_a_while() -> None:
    """The stream switched away from is benched for BENCH seconds even if all looks well, and
    for twice as long after failing again."""
    main, backup = watched(0.0), watched(0.0)
    picker = Picker()
    on_air(picker, pair(main, backup))
    main.playlist_failed(1.0, "x")
    main.playlist_failed(1.5, "x")
    assert picker.decide(1.5, pair(main, backup)) is not None  # to backup
    main = watched(2.0)
    backup.playlist_failed(3.0, "x")
    backup.playlist_failed(3.5, "x")
    # The backup dies too, and main is benched: off air (nothing) rather than flapping back.
    decision = picker.decide(3.5, pair(main, backup))
    assert decision is not None
    assert (decision.to, decision.reason) == (None, SwitchReason.DEAD)
    assert picker.decide(BENCH, pair(main, backup)) is None
    decision = picker.decide(1.5 + BENCH + 0.1, pair(main, backup))
    assert decision is not None
    assert decision.to == "main"
    assert picker.benched["backup"] > 3.5 + BENCH - 1
    assert picker.strikes == {"main": 1, "backup": 1}
    picker.bench("main", 200.0)
    assert picker.benched["main"] == 200.0 + 2 * BENCH


def test_a_healthy_stream_is_not_left_for_a_slightly_better_one() -> None:
    """Priority alone never replaces a healthy stream on air; a clearly better one does, after
    HOLD seconds on air, with reason degraded."""
    main, backup = watched(0.0), watched(0.0)
    picker = Picker()
    picker.on_air, picker.since = "backup", 0.0
    for t in range(1, 200):
        main.playlist_ok(float(t), 100 + t, TARGET, ended=False)
        backup.playlist_ok(float(t), 100 + t, TARGET, ended=False)
        assert picker.decide(float(t), pair(main, backup)) is None
    # The backup turns slow (downloads take 1.5x the play time): main is now clearly better.
    for t in range(200, 230):
        backup.playlist_ok(float(t), 100 + t, TARGET, ended=False)
        backup.segment_done(float(t), 3.0, failed=False)
    decision = picker.decide(230.0, pair(main, backup))
    assert decision is not None
    assert (decision.to, decision.reason) == ("main", SwitchReason.DEGRADED)
    # ... but not before HOLD seconds on air.
    fresh = Picker(on_air="backup", since=220.0)
    assert fresh.decide(230.0, pair(main, backup)) is None
    assert fresh.decide(220.0 + HOLD, pair(main, backup)) is not None


def test_a_stall_or_errors_with_nothing_else_keep_the_stream() -> None:
    """With no other stream, a stalled one stays on air (it may recover): no event."""
    obs = watched(0.0)
    picker = Picker()
    only = {"main": Candidate("main", Health.OK, 0, obs)}
    on_air(picker, only)
    assert picker.decide(10 * TARGET, only) is None
    assert picker.on_air == "main"


def test_slowness_is_the_median_of_the_last_minute() -> None:
    """Download time over play time, the median of the last minute."""
    obs = watched(0.0)
    for t, seconds in enumerate([0.2, 0.2, 4.0]):
        obs.segment_done(float(t), seconds, failed=False)
    assert obs.slowness(3.0) == 0.1
    assert obs.slowness(100.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ok", "fail", "seg-fail", "seg-slow", "freeze",
                                           "dead", "revive"]),
                          st.sampled_from(["main", "backup", "third"])),
                min_size=1, max_size=120))
def test_never_more_than_one_switch_per_failure_and_never_to_a_troubled_stream(
        events: list[tuple[str, str]]) -> None:
    """Whatever happens to three streams, each switch is to a stream without trouble (or to
    nothing), a stream switched away from for a failure is not back within BENCH seconds, and
    no stream is left for another without a reason."""
    names = ("main", "backup", "third")
    obs = {n: watched(0.0) for n in names}
    health = dict.fromkeys(names, Health.OK)
    frozen: set[str] = set()
    picker = Picker()
    left: dict[str, float] = {}
    now = 0.0
    for action, name in events:
        now += 0.5
        if action == "fail":
            obs[name].playlist_failed(now, "x")
        elif action == "seg-fail":
            obs[name].segment_done(now, 0.1, failed=True)
        elif action == "seg-slow":
            obs[name].segment_done(now, 5.0, failed=False)
        elif action == "freeze":
            frozen.add(name)
        elif action == "dead":
            health[name] = Health.DEAD
        else:
            health[name], obs[name] = Health.OK, watched(now)
            frozen.discard(name)
        for n in names:
            if n not in frozen and obs[n].playlist_failures == 0:
                obs[n].playlist_ok(now, 100 + int(now // TARGET), TARGET, ended=False)
        candidates = {n: Candidate(n, health[n], i, obs[n]) for i, n in enumerate(names)}
        decision = picker.decide(now, candidates)
        if decision is None:
            continue
        if decision.to is not None:
            assert trouble(candidates[decision.to], now, on_air=False) is None
            assert score(candidates[decision.to], now) > -math.inf
            assert now - left.get(decision.to, -math.inf) >= BENCH \
                or decision.reason in (SwitchReason.START, SwitchReason.REMOVED)
        if decision.previous is not None and decision.reason is not SwitchReason.DEGRADED:
            left[decision.previous] = now


def test_variants_match_by_resolution_then_bandwidth() -> None:
    """A slot plays the nearest resolution (log scale), then the nearest bandwidth."""
    other = [Rendition(6_000_000, 1920, 1080), Rendition(3_000_000, 1280, 720),
             Rendition(800_000, 640, 360), Rendition(400_000, 640, 360)]
    assert match(Rendition(2_500_000, 1280, 720), other) == 1
    assert match(Rendition(5_000_000, 1600, 900), other) == 0
    assert match(Rendition(450_000, 640, 360), other) == 3
    assert match(Rendition(700_000, 426, 240), other) == 2
    assert match(Rendition(), other) == 0  # nothing known: the first (the master's order)
    assert match(Rendition(1_000_000), [Rendition(900_000), Rendition(5_000_000)]) == 0
