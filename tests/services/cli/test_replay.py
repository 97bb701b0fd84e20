"""`slipstream replay` and `slipstream tail` on a real nats-server: history decoded with the
shared Structs, filters, JSON lines, republishing, live following, and secrets kept out."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from services.cli.replay import ReplayError, parse_duration, replay, tail
from services.scheduler.publisher import Publisher, read_state
from shared import subjects, topology
from shared.channels import ChannelSwitch, SwitchReason
from shared.codec import encode
from shared.jobs import ExtractJob
from shared.sessions import Live, Scheduled, Session, SessionEvent, SessionKind, Upcoming
from shared.sourceadmin import SourceAdmin
from shared.sources import parse
from shared.streams import Health, StreamRecord
from tests.procs import base_env, module

NOW = datetime.now(UTC).replace(microsecond=0)
RACE = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco GP",
               kind=SessionKind.RACE, name="Race", start=NOW + timedelta(minutes=20))
QUALI = Session(key="2026.monaco.qualifying", season=2026, round=8, event="Monaco GP",
                kind=SessionKind.QUALIFYING, name="Qualifying", start=NOW - timedelta(days=1))


def secret_record(health: Health) -> StreamRecord:
    return StreamRecord(id="main", session=RACE.key, source_id="main", title="Main feed",
                        upstream_url="https://cdn.example.test/live.m3u8?token=CANARY-SECRET",
                        headers={"Authorization": "Bearer CANARY-SECRET"},
                        cookies={"session": "CANARY-SECRET"}, extractor="http",
                        resolved_at=NOW, health=health)


@pytest.fixture
async def history(nc: Client) -> Client:
    js = nc.jetstream()
    await topology.apply(js)
    kv = await topology.sessions_kv(js)
    publisher = Publisher(js, kv, await read_state(kv))
    for event in (Scheduled(session=QUALI, at=NOW), Scheduled(session=RACE, at=NOW),
                  Upcoming(session=RACE, at=NOW), Live(session=RACE, at=NOW)):
        await publisher.publish(event)
    streams = await topology.streams_kv(js)
    key = subjects.stream_key(RACE.key, "main")
    await streams.put(key, encode(secret_record(Health.RESOLVING)))
    await streams.put(key, encode(secret_record(Health.OK)))
    await streams.delete(key)
    return nc


async def test_replay_prints_the_session_history_as_a_table(history: Client) -> None:
    out = io.StringIO()
    count = await replay(history, "SESSIONS", subject=None, since=timedelta(hours=1), from_seq=None,
                         as_json=False, republish=None, limit=None, out=out)
    lines = out.getvalue().splitlines()
    assert count == 4
    assert lines[0].split() == ["seq", "time", "(UTC)", "subject", "event"]
    assert "sessions.2026.monaco.race.live" in lines[-1]
    assert "live" in lines[-1]
    assert "Monaco GP · Race" in lines[-1]


async def test_replay_json_lines_decode_with_the_shared_structs(history: Client) -> None:
    out = io.StringIO()
    count = await replay(history, "SESSIONS", subject="sessions.2026.monaco.race.>", since=None,
                         from_seq=None, as_json=True, republish=None, limit=None, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(lines) == 3  # how many were read, as in a table
    events = [msgspec.convert(line["data"], SessionEvent) for line in lines]  # type: ignore[call-overload]
    assert [type(e).__name__ for e in events] == ["Scheduled", "Upcoming", "Live"]
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)

    out = io.StringIO()
    count = await replay(history, "SESSIONS", subject=None, since=None, from_seq=3, as_json=True,
                         republish=None, limit=1, out=out)
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [3]
    assert count == 1


async def test_replay_of_a_stream_key_shows_its_kv_history_without_secrets(history: Client) -> None:
    out = io.StringIO()
    await replay(history, "streams", subject="2026.monaco.race.*", since=None, from_seq=None,
                 as_json=True, republish=None, limit=None, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["operation"] for line in lines] == ["PUT", "PUT", "DEL"]
    assert lines[0]["key"] == "2026.monaco.race.main"
    records = [msgspec.convert(line["data"], StreamRecord) for line in lines[:2]]
    assert [r.health for r in records] == [Health.RESOLVING, Health.OK]
    table = io.StringIO()
    await replay(history, "streams", subject=None, since=None, from_seq=None, as_json=False,
                 republish=None, limit=None, out=table)
    assert "deleted" in table.getvalue()
    assert "CANARY-SECRET" not in out.getvalue() + table.getvalue()


async def test_republish_feeds_a_debugging_consumer_and_refuses_own_subjects(history: Client) -> None:
    got: list[tuple[str, bytes, dict[str, str]]] = []

    async def collect(msg: object) -> None:
        got.append((msg.subject, msg.data, dict(msg.headers or {})))  # type: ignore[attr-defined]

    sub = await history.subscribe("debug.sessions", cb=collect)
    await replay(history, "SESSIONS", subject=None, since=None, from_seq=None, as_json=False,
                 republish="debug.sessions", limit=None, out=io.StringIO())
    for _ in range(50):
        if len(got) == 4:
            break
        await asyncio.sleep(0.02)
    await sub.unsubscribe()
    assert len(got) == 4
    assert got[-1][2]["Slipstream-Replay-Of"].startswith("SESSIONS:4:sessions.2026.monaco.race.live")
    assert "Nats-Msg-Id" not in got[-1][2]  # the copy is not deduplicated against the original
    for bad in ("sessions.copy", "debug.*", "has space"):
        with pytest.raises(ReplayError):
            await replay(history, "SESSIONS", subject=None, since=None, from_seq=None,
                         as_json=False, republish=bad, limit=None, out=io.StringIO())


async def test_tail_prints_events_as_they_happen(history: Client) -> None:
    out = io.StringIO()
    stop, ready = asyncio.Event(), asyncio.Event()
    following = asyncio.create_task(tail(history, ["SESSIONS", "streams"], as_json=False,
                                         stop=stop, out=out, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    assert out.getvalue() == ""  # history is replay's job: tail starts from now
    streams = await topology.streams_kv(history.jetstream())
    await streams.put(subjects.stream_key(RACE.key, "main"), encode(secret_record(Health.DEGRADED)))
    for _ in range(100):
        if "degraded" in out.getvalue():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(following, 5)
    assert "2026.monaco.race.main" in out.getvalue()
    assert "degraded" in out.getvalue()
    assert "CANARY-SECRET" not in out.getvalue()


def test_durations_and_unknown_streams_are_clear_errors() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "soon", "1x", "-1h"):
        with pytest.raises(ReplayError, match="expected a duration"):
            parse_duration(bad)


def test_the_command_finds_nats_and_explains_problems(history: Client, nats_url: str,
                                                      tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", SLIPSTREAM_NATS_URL=nats_url)
    ok = subprocess.run([*module("services.cli"), "replay", "SESSIONS", "--since", "1h", "--json"],
                        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.splitlines()) == 4
    empty = subprocess.run([*module("services.cli"), "replay", "SESSIONS", "--json", "--subject",
                            "sessions.1999.nowhere.race.>"], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert (empty.returncode, empty.stdout) == (0, "")  # nothing matching is not a failure
    bad = subprocess.run([*module("services.cli"), "replay", "NOPE"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "unknown stream 'NOPE'" in bad.stderr
    lost = base_env(tmp_path / "elsewhere")
    lost.pop("SLIPSTREAM_NATS_URL", None)
    none = subprocess.run([*module("services.cli"), "replay", "SESSIONS"], env=lost,
                          capture_output=True, text=True, timeout=60, check=False)
    assert none.returncode == 1
    assert "start `slipstream up`" in none.stderr


async def test_the_jobs_work_queue_replays_beside_its_consumer_but_cannot_be_followed(
        history: Client) -> None:
    """JOBS allows one consumer (the extractors'); replay reads it directly, tail says why not."""
    js = history.jetstream()
    await js.pull_subscribe(subjects.EXTRACT_JOBS_ALL, durable=topology.WORKER_CONSUMER,
                            stream=topology.JOBS_STREAM)  # the extractors' consumer exists
    job = ExtractJob(session=RACE, source_id="main")
    await js.publish(subjects.extract_job(RACE.key, "main"), encode(job))
    out = io.StringIO()
    await replay(history, "JOBS", subject=None, since=timedelta(minutes=5), from_seq=None,
                 as_json=True, republish=None, limit=None, out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [msgspec.convert(line["data"], ExtractJob) for line in lines] == [job]
    with pytest.raises(ReplayError, match="work queue"):
        await tail(history, ["JOBS"], as_json=False, stop=asyncio.Event(), out=io.StringIO())


async def test_tail_and_replay_show_source_changes_without_secret_values(history: Client) -> None:
    """A source added and edited shows in `tail` as it happens and in `replay SOURCE_CHANGES`
    and `replay sources`, with who did it and what changed, never a header value."""
    js = history.jetstream()
    out = io.StringIO()
    stop, ready = asyncio.Event(), asyncio.Event()
    following = asyncio.create_task(tail(history, ["SOURCE_CHANGES"], as_json=False, stop=stop,
                                         out=out, on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    admin = SourceAdmin(js, await topology.sources_kv(js))
    await admin.add(parse({"id": "site-a", "url": "https://a.test/",
                           "headers": {"X-Key": "CANARY-SECRET"}}), "cli:tester")
    await admin.edit("site-a", {"headers": {"X-Key": "CANARY-SECRET-2"}}, "admin:ops")
    for _ in range(100):
        if "edited" in out.getvalue():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(following, 5)
    assert "added     site-a by cli:tester" in out.getvalue()
    assert "edited    site-a by admin:ops (headers.X-Key)" in out.getvalue()
    replayed, records = io.StringIO(), io.StringIO()
    await replay(history, "SOURCE_CHANGES", subject=None, since=None, from_seq=None,
                 as_json=True, republish=None, limit=None, out=replayed)
    await replay(history, "sources", subject=None, since=None, from_seq=None, as_json=True,
                 republish=None, limit=None, out=records)
    assert [json.loads(line)["data"]["action"] for line in replayed.getvalue().splitlines()] == [
        "added", "edited"]
    assert json.loads(records.getvalue().splitlines()[-1])["data"]["headers"] == {"X-Key": "***"}
    for text in (out.getvalue(), replayed.getvalue(), records.getvalue()):
        assert "CANARY-SECRET" not in text


async def test_tail_shows_channel_switches(nc: Client) -> None:
    """A channel switch published by the relay shows in `slipstream tail` (CHANNELS is followed
    by default) as one readable line, and replays from the CHANNELS stream."""
    await topology.apply(nc.jetstream())
    out = io.StringIO()
    stop, ready = asyncio.Event(), asyncio.Event()
    following = asyncio.create_task(tail(nc, ["CHANNELS"], as_json=False, stop=stop, out=out,
                                         on_ready=ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    event = ChannelSwitch(channel=RACE.key, session=RACE.key, from_stream="main",
                          to_stream="backup", reason=SwitchReason.STALLED,
                          detail="no new segment for 4.2 s", at=NOW)
    await nc.jetstream().publish(subjects.channel_switched(RACE.key), encode(event))
    for _ in range(100):
        if "backup" in out.getvalue():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(following, 5)
    line = out.getvalue()
    assert "channels.2026.monaco.race.switched" in line
    assert "on air main -> backup (stalled: no new segment for 4.2 s)" in line
    replayed = io.StringIO()
    await replay(nc, "CHANNELS", subject=None, since=None, from_seq=None, as_json=True,
                 republish=None, limit=None, out=replayed)
    assert json.loads(replayed.getvalue().splitlines()[0])["data"]["to_stream"] == "backup"
