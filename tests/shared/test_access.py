"""Least privilege on a real nats-server configured with ``shared.access.authorization``: no
anonymous access, the ``consumer`` user gets the public events and nothing else, each service's
user is refused outside its role, refusals are typed errors at once (not timeouts), and every
part of the topology has a declared writer."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from services.scheduler.publisher import Publisher, read_state
from shared import access, bus, subjects, topology
from shared.access import Role
from shared.codec import decode, encode
from shared.kvmirror import KvMirror
from shared.natsserver import EmbeddedNats
from shared.public import Announcer, PublicEvent, session_event, stream_event
from shared.sessions import Live, Session, SessionEvent, SessionKind
from shared.settings import NatsSettings, SettingsError, load_settings
from shared.streams import Health, StreamRecord
from shared.tasks import background
from tests.conftest import free_port
from tests.procs import base_env, module

CANARY = "CANARY-2b9e-access-secret"
NOW = datetime.now(UTC).replace(microsecond=0)
RACE = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco GP",
               kind=SessionKind.RACE, name="Race", start=NOW - timedelta(minutes=5),
               end=NOW + timedelta(hours=2))


@dataclass
class Secured:
    url: str
    folder: Path
    creds: dict[Role, access.Credential]

    def settings(self, role: Role, password: str | None = None) -> NatsSettings:
        if password is not None:
            return NatsSettings(url=self.url, user=role.value, password=password)
        return NatsSettings(url=self.url, user=role.value,
                            password_file=str(access.password_path(self.folder, role)))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    """A nats-server with JetStream and the generated users and permissions."""
    folder = tmp_path / "credentials"
    creds = access.ensure_credentials(folder)
    server = EmbeddedNats(tmp_path / "nats", name="slipstream-access",
                          authorization=access.authorization(
                              {r: c.password for r, c in creds.items()}))
    server.start()
    try:
        yield Secured(server.url, folder, creds)
    finally:
        server.stop()


class Conn:
    """A client connected as one role, with what the server refused it."""

    def __init__(self, nc: Client, guard: bus.Access) -> None:
        self.nc = nc
        self.guard = guard

    async def refused(self, within: float = 3.0) -> bus.NatsPermissionError:
        """The first refusal, waited for (the server reports it asynchronously)."""
        await self.nc.flush()
        deadline = time.monotonic() + within
        while self.guard.refused is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.guard.refused is not None, "the server refused nothing"
        return self.guard.refused


@pytest.fixture
async def connect(secured: Secured) -> AsyncIterator[Callable[[Role], Awaitable[Conn]]]:
    opened: list[Client] = []

    async def _connect(role: Role) -> Conn:
        guard = bus.Access(role.value)
        service = "replay" if role is Role.OPS else role.value
        nc = await bus.connect([secured.url], service, secured.settings(role), guard=guard)
        opened.append(nc)
        return Conn(nc, guard)

    yield _connect
    for nc in opened:
        await bus.close(nc)


def secret_record() -> StreamRecord:
    return StreamRecord(id="main", session=RACE.key, source_id="main", title=f"Main {CANARY}",
                        upstream_url=f"https://cdn.example.test/live.m3u8?token={CANARY}",
                        headers={"Authorization": f"Bearer {CANARY}"},
                        cookies={"session": CANARY}, extractor="http", resolved_at=NOW,
                        health=Health.OK, health_detail=f"live https://x.test/?t={CANARY}")


async def test_anonymous_and_wrong_credentials_are_refused_at_once(secured: Secured) -> None:
    """No credentials, or a wrong password, fail the first connect with a typed error naming the
    fix, within a second (nats-py alone would retry for ever)."""
    started = time.monotonic()
    with pytest.raises(bus.NatsAuthError, match="requires credentials"):
        await bus.connect([secured.url], "relay", NatsSettings(url=secured.url))
    with pytest.raises(bus.NatsAuthError, match=r"as user 'relay'.*wrong password"):
        await bus.connect([secured.url], "relay", secured.settings(Role.RELAY, "not-it"))
    assert time.monotonic() - started < 3


async def test_every_topology_part_is_applied_by_each_service_and_nothing_is_deleted(
        connect: Callable[[Role], Awaitable[Conn]]) -> None:
    """Each service's user may put the whole topology in place; none may delete a stream."""
    for role in access.SERVICES:
        conn = await connect(role)
        await conn.guard.check(topology.apply(conn.nc.jetstream()))
        assert await topology.missing(conn.nc.jetstream()) == []
        assert conn.guard.refused is None, role
    relay = await connect(Role.RELAY)
    await relay.nc.publish(f"$JS.API.STREAM.DELETE.{topology.STREAMS_BUCKET_STREAM}", b"")
    refused = await relay.refused()
    assert refused.operation == "publish"
    # nats-py lower-cases the server's error line: subjects come back in lower case.
    assert refused.subject == "$JS.API.STREAM.DELETE.KV_streams".lower()


async def test_the_consumer_gets_public_events_and_no_secret(
        connect: Callable[[Role], Awaitable[Conn]]) -> None:
    """What the extractor writes to the streams bucket and the scheduler to the sessions bucket
    reaches the consumer user as public events (snapshot, then changes), without a secret."""
    scheduler, extractor, consumer = (await connect(Role.SCHEDULER), await connect(Role.EXTRACTOR),
                                      await connect(Role.CONSUMER))
    await scheduler.guard.check(topology.apply(scheduler.nc.jetstream()))
    got: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    async def on(msg: object) -> None:
        got.append((msg.subject, msg.data))  # type: ignore[attr-defined]
        arrived.set()

    js_consumer = consumer.nc.jetstream()
    sub = await consumer.guard.check(js_consumer.subscribe(
        subjects.PUBLIC_ALL, stream=topology.PUBLIC_STREAM, ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, cb=on))
    js_sched, js_ext = scheduler.nc.jetstream(), extractor.nc.jetstream()
    sessions_kv = await topology.sessions_kv(js_sched)
    streams_kv = await topology.streams_kv(js_ext)
    sessions_ann = Announcer[SessionEvent](js_sched, session_event)
    streams_ann = Announcer[StreamRecord](js_ext, stream_event)
    sessions_watch = KvMirror[SessionEvent](SessionEvent, on_change=sessions_ann.on_change)
    streams_watch = KvMirror[StreamRecord](StreamRecord, on_change=streams_ann.on_change)
    async with background(sessions_ann.run(), "s-ann"), background(streams_ann.run(), "r-ann"), \
            background(sessions_watch.follow(sessions_kv), "s-watch"), \
            background(streams_watch.follow(streams_kv), "r-watch"):
        await Publisher(js_sched, sessions_kv, await read_state(sessions_kv)).publish(
            Live(session=RACE, at=NOW))
        key = subjects.stream_key(RACE.key, "main")
        await streams_kv.put(key, encode(secret_record()))
        await streams_kv.delete(key)
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 1)
    await sub.unsubscribe()
    assert consumer.guard.refused is None
    assert scheduler.guard.refused is None
    assert extractor.guard.refused is None
    events = {subject: decode(data, PublicEvent) for subject, data in got}  # type: ignore[arg-type]
    assert set(events) == {"public.sessions.2026.monaco.race",
                           "public.streams.2026.monaco.race.main"}
    assert type(events["public.sessions.2026.monaco.race"]).__name__ == "SessionChanged"
    kinds = [type(decode(d, PublicEvent)).__name__ for s, d in got  # type: ignore[arg-type]
             if s.startswith("public.streams.")]
    assert kinds == ["StreamChanged", "StreamRemoved"]
    changed = decode(next(d for s, d in got if s.startswith("public.streams.")), PublicEvent)  # type: ignore[arg-type]
    assert changed.stream.health is Health.OK  # type: ignore[union-attr]
    assert changed.stream.playback_url == ""  # type: ignore[union-attr]
    for _, data in got:
        assert CANARY not in data.decode()
        assert b"cdn.example.test" not in data


@pytest.mark.parametrize("attempt", [
    "read-streams-kv", "get-streams-kv", "publish-sessions", "delete-bucket", "pull-jobs",
])
async def test_the_consumer_is_refused_everything_private(
        connect: Callable[[Role], Awaitable[Conn]], attempt: str) -> None:
    """The consumer user cannot read the private records, publish session events, delete a
    bucket or take jobs: each is a permissions violation naming the subject."""
    owner = await connect(Role.EXTRACTOR)
    await owner.guard.check(topology.apply(owner.nc.jetstream()))
    consumer = await connect(Role.CONSUMER)
    nc = consumer.nc
    expected = {
        "read-streams-kv": ("subscribe", "$KV.streams.>"),
        "get-streams-kv": ("publish", "$JS.API.DIRECT.GET.KV_streams.$KV.streams.2026.monaco.race.main"),
        "publish-sessions": ("publish", "sessions.2026.monaco.race.live"),
        "delete-bucket": ("publish", "$JS.API.STREAM.DELETE.KV_streams"),
        "pull-jobs": ("publish", "$JS.API.CONSUMER.MSG.NEXT.JOBS.extract-worker"),
    }[attempt]
    if attempt == "read-streams-kv":
        await nc.subscribe(subjects.stream_feed())
    elif attempt == "publish-sessions":
        await nc.publish(expected[1], b"{}")
    else:
        with contextlib.suppress(TimeoutError, Exception):
            await nc.request(expected[1], b"", timeout=0.5)
    refused = await consumer.refused()
    assert (refused.operation, refused.subject) == (expected[0], expected[1].lower())
    assert "consumer" in str(refused)
    assert expected[1].lower() in str(refused)


async def test_each_service_is_refused_outside_its_role(
        connect: Callable[[Role], Awaitable[Conn]]) -> None:
    """The relay cannot write the streams bucket, the gateway cannot publish session events,
    the scheduler cannot take jobs, the extractor cannot write the sessions bucket, and a
    role cannot read another's replies."""
    setup = await connect(Role.EXTRACTOR)
    await setup.guard.check(topology.apply(setup.nc.jetstream()))
    cases = [
        (Role.RELAY, "publish", "$KV.streams.2026.monaco.race.main"),
        (Role.GATEWAY, "publish", "sessions.2026.monaco.race.live"),
        (Role.SCHEDULER, "publish", "$JS.API.CONSUMER.MSG.NEXT.JOBS.extract-worker"),
        (Role.EXTRACTOR, "publish", "$KV.sessions.2026.monaco.race"),
        (Role.RELAY, "subscribe", "_INBOX.extractor.>"),
        (Role.OPS, "publish", "$KV.streams.2026.monaco.race.main"),
    ]
    for role, operation, subject in cases:
        conn = await connect(role)
        if operation == "publish":
            await conn.nc.publish(subject, b"{}")
        else:
            await conn.nc.subscribe(subject)
        refused = await conn.refused()
        assert (refused.operation, refused.subject) == (operation, subject.lower()), role


async def test_a_refusal_fails_a_start_up_step_at_once_not_by_timeout(
        connect: Callable[[Role], Awaitable[Conn]]) -> None:
    """Opening the streams bucket as the consumer would wait for the JetStream timeout (5 s);
    under Access.check it fails at once with the permission it lacks."""
    consumer = await connect(Role.CONSUMER)
    started = time.monotonic()
    with pytest.raises(bus.NatsPermissionError, match=r"(?i)STREAM\.INFO\.KV_streams"):
        await consumer.guard.check(topology.streams_kv(consumer.nc.jetstream()))
    assert time.monotonic() - started < 2


def test_every_stream_bucket_and_consumer_has_a_declared_user() -> None:
    """A stream or bucket added to the topology without saying who writes it (and a durable
    consumer nobody pulls from) fails here, not in production."""
    written = {s for g in access.GRANTS.values() for s in g.publishes}
    parts_written = {subject for g in access.GRANTS.values() for subject in g.publishes_to}
    for config in topology.stream_configs():
        own = set(config.subjects or [])
        assert config.name in written or own <= parts_written or any(
            p.startswith(s.removesuffix(">")) for s in own for p in parts_written), \
            f"stream {config.name}: no role publishes into it (declare it in access.GRANTS)"
    buckets = {b for g in access.GRANTS.values() for b in g.writes}
    for bucket in topology.BUCKETS:
        assert bucket.name in buckets, f"bucket {bucket.name}: no role writes it (access.GRANTS)"
    consumed = {c for g in access.GRANTS.values() for c in g.consumes}
    for consumer in topology.CONSUMERS:
        assert consumer.config.durable_name in consumed
    ops = access.permissions(Role.OPS).publish
    for bucket in topology.BUCKETS:  # by construction: ops reads every bucket's history
        assert f"$JS.API.DIRECT.GET.{bucket.stream_name}.>" in ops


def test_the_consumer_may_only_read_public_subjects() -> None:
    """No private subject, no write, no other role's inbox in the consumer's allow-lists."""
    perms = access.permissions(Role.CONSUMER)
    assert perms.subscribe == ("_INBOX.consumer.>", "public.>")
    assert all(".PUBLIC" in s for s in perms.publish)
    assert not perms.allow_responses


def test_credentials_are_made_once_private_and_never_shown(tmp_path: Path) -> None:
    """Generated on first use, 0600 in a 0700 folder, the same on the next start, and a
    credential's repr hides the password."""
    folder = tmp_path / "credentials"
    first = access.ensure_credentials(folder)
    again = access.ensure_credentials(folder)
    assert {r: c.password for r, c in first.items()} == {r: c.password for r, c in again.items()}
    assert len({c.password for c in first.values()}) == len(Role)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for role in Role:
        assert stat.S_IMODE(access.password_path(folder, role).stat().st_mode) == 0o600
        assert first[role].password not in repr(first[role])
    path = access.password_path(folder, Role.RELAY)
    path.chmod(0o644)
    with pytest.raises(access.CredentialsError, match="readable by others"):
        access.read_password(path, private=True)


def test_public_events_decode_as_the_documented_union() -> None:
    """The payloads other programs decode: the feed's StreamChanged, StreamRemoved and
    SessionChanged, tagged by ``type``."""
    subject, event = stream_event("2026.monaco.race.main", secret_record(), 7)
    assert subject == "public.streams.2026.monaco.race.main"
    wire = msgspec.json.decode(encode(event))
    assert wire["type"] == "stream"
    assert wire["stream"]["revision"] == 7
    assert CANARY not in encode(event).decode()


def _run_service(service: str, env: dict[str, str], tmp_path: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(module(f"services.{service}"), env=base_env(tmp_path / "data", **env),
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.slow
def test_a_service_without_credentials_stops_at_once_saying_so(secured: Secured,
                                                               tmp_path: Path) -> None:
    """The relay started with no NATS user against a server that requires one exits 1 within
    seconds with a readable error, instead of retrying for ever."""
    code, out, took = _run_service("relay", {
        "SLIPSTREAM_NATS_URL": secured.url, "SLIPSTREAM_RELAY_PORT": str(free_port()),
        "SLIPSTREAM_LOG_FORMAT": "json"}, tmp_path)
    assert code == 1, out
    assert "the server requires credentials; set nats.user and nats.password_file" in out
    assert took < 60


@pytest.mark.slow
def test_a_service_with_another_roles_credentials_stops_naming_the_permission(
        secured: Secured, tmp_path: Path) -> None:
    """The scheduler given the relay's user exits 1 at start with the refused subscription
    named (not after a timeout), and no password is in its output."""
    code, out, took = _run_service("scheduler", {
        "SLIPSTREAM_NATS_URL": secured.url, "SLIPSTREAM_SCHEDULER_PORT": str(free_port()),
        "SLIPSTREAM_NATS_USER": "relay",
        "SLIPSTREAM_NATS_PASSWORD_FILE": str(access.password_path(secured.folder, Role.RELAY)),
        "SLIPSTREAM_LOG_FORMAT": "json"}, tmp_path)
    assert code == 1, out
    # the first thing refused: the scheduler's own inbox (the relay's user may use the relay's)
    assert "slipstream scheduler: NATS refused user 'relay' permission to subscribe to " \
           "'_inbox.scheduler." in out
    assert took < 60
    for credential in secured.creds.values():
        assert credential.password not in out


def test_nats_credential_settings_are_checked_together_and_never_shown(tmp_path: Path) -> None:
    """A password needs a user, not both password and password_file; the error never quotes a
    password."""
    with pytest.raises(SettingsError, match=r"a password needs nats\.user") as caught:
        load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                           "SLIPSTREAM_NATS_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(SettingsError, match="password or password_file, not both"):
        load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path), "SLIPSTREAM_NATS_USER": "relay",
                           "SLIPSTREAM_NATS_PASSWORD": "x", "SLIPSTREAM_NATS_PASSWORD_FILE": "/p"})
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_NATS_USER": "relay",
                                  "SLIPSTREAM_NATS_PASSWORD_FILE": "/run/secrets/nats-relay"})
    assert settings.nats.user == "relay"
    assert bus.role_of("relay") is Role.RELAY
    assert bus.role_of("tail") is Role.OPS
